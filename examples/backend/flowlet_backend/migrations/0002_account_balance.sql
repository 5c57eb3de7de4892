-- Each account carries its balance (ledger.py debits it with one guarded UPDATE), filled once
-- from its ledger entries. A database whose accounts already have the column (made by the
-- startup code that added it) keeps its values. The CHECK that keeps balances at or above
-- zero is added by the migrate command once no balance is negative (ledger.non_negative).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'accounts'::regclass AND attname = 'balance_cents' AND NOT attisdropped
    ) THEN
        ALTER TABLE accounts ADD COLUMN balance_cents BIGINT NOT NULL DEFAULT 0;
        UPDATE accounts a SET balance_cents =
            COALESCE((SELECT sum(amount_cents) FROM transactions WHERE to_account = a.id), 0)::bigint
            - COALESCE((SELECT sum(amount_cents) FROM transactions WHERE from_account = a.id), 0)::bigint;
    END IF;
END
$$;
