"""Bad input of the backup topic: every task, every flag that takes a value, the backup.* and
ssh.* keys (destinations, check, schedule), INVOKE_BACKUP_* / INVOKE_SSH_* variables, paths.
``backup.check`` is a Nagios plugin: what keeps it from checking is UNKNOWN (exit 3)."""

from __future__ import annotations

from tests.badinput import case

PROJECT = "{}\n"  # the project's invoke.yaml as it is (the environments have namespaces)
# a project whose target names its TLS keys (INVOKE_* variables override only keys that exist)
TLS_PROJECT = (
    "environments: {development: {namespace: dev, databases: {postgres: {host: 127.0.0.1, "
    "name: d, user: u, sslmode: auto, sslrootcert: ''}}}}\n"
)
DEST = "backup: {destinations: {offsite: {url: 'offsite:bucket'}}}\n"

CASES = [
    # backup.postgres / backup.mysql / backup: flags converted by the schema
    case(
        "backup.postgres",
        "--level",
        "abc",
        config=PROJECT,
        expect=r"^--level: 'abc' is not valid; valid: an integer from 0 to 19$",
        id="backup-level-text",
    ),
    case(
        "backup.postgres",
        "--level",
        "99",
        config=PROJECT,
        expect=r"^--level: 99 is not valid",
        id="backup-level-range",
    ),
    case(
        "backup.postgres",
        "--compress",
        "gzip",
        "--level",
        "12",
        config=PROJECT,
        expect=r"^--level: 12 is not valid for gzip; valid: 1-9$",
        id="backup-level-gzip",
    ),
    case(
        "backup.postgres",
        "--jobs",
        "0",
        config=PROJECT,
        expect=r"^--jobs: 0 is not valid; valid: an integer from 1 to 64$",
        id="backup-jobs-zero",
    ),
    case(
        "backup.postgres",
        "--jobs",
        "x",
        config=PROJECT,
        expect=r"^--jobs: 'x' is not valid",
        id="backup-jobs-text",
    ),
    case(
        "backup.postgres",
        "--jobs",
        "4",
        config=PROJECT,
        expect=r"^--jobs: 4 needs --format directory",
        id="backup-jobs-plain",
    ),
    case(
        "backup.postgres",
        "--format",
        "tar",
        config=PROJECT,
        expect=r"^--format: 'tar' is not valid; valid: plain, custom, directory$",
        id="backup-format",
    ),
    case(
        "backup.postgres",
        "--compress",
        "bz2",
        config=PROJECT,
        expect=r"^--compress: 'bz2' is not valid; valid: gzip, zstd, none$",
        id="backup-compress",
    ),
    case(
        "backup.postgres",
        "--format",
        "directory",
        "--compress",
        "zstd",
        config=PROJECT,
        expect=r"^--compress: zstd is not valid with --format directory",
        id="backup-dir-zstd",
    ),
    case(
        "backup.postgres",
        "--database",
        "nope",
        config=PROJECT,
        expect=r"^--database: 'nope' is not valid in development; valid: postgres$",
        id="backup-database",
    ),
    case(
        "backup.postgres",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid; valid: development, production, staging$",
        id="backup-env",
    ),
    case(
        "backup.postgres",
        "--output-dir",
        "/sys/x",
        config=PROJECT,
        expect=(
            r"^--output-dir: '/sys/x' is not valid: cannot w"
            r"rite there \(.+\); valid: a writable directory$"
        ),
        id="backup-output-dir-sys",
    ),
    case(
        "backup.postgres",
        "--output-dir",
        "/etc/passwd",
        config=PROJECT,
        expect=(
            r"^--output-dir: '/etc/passwd' is not valid"
            r"; valid: a directory .*is not a directory$"
        ),
        id="backup-output-dir-file",
    ),
    case(  # /tmp: world-writable (sticky or not): anyone may plant names in it
        "backup.postgres",
        "--output-dir",
        "/tmp",
        config=PROJECT,
        expect=(
            r"^--output-dir: '/tmp' is not valid: writable by group or others \(mode 1777\); "
            r"valid: a directory owned by you \(or root\), not writable by group or others$"
        ),
        id="backup-output-dir-shared",
    ),
    case(
        "backup",
        env={"INVOKE_BACKUP_OUTPUT_DIR": "/tmp"},
        config=PROJECT,
        expect=r"^backup\.output_dir: '/tmp' is not valid: writable by group or others",
        id="env-output-dir-shared",
    ),
    case(
        "backup.schedule",
        "--cron",
        config="backup: {schedule: {env_dir: /tmp}}\n",
        env={"FLOWLET_DB_PASSWORD": "x"},
        expect=(r"^backup\.schedule\.env_dir: '/tmp' is not valid: writable by group or others"),
        id="schedule-env-dir-shared",
    ),
    case(
        "backup.postgres",
        "--to",
        "nowhere",
        config=PROJECT,
        expect=(
            r"^--to: 'nowhere' is not valid; valid: \(no"
            r"ne configured under backup\.destinations\)$"
        ),
        id="backup-to-unknown",
    ),
    case(
        "backup.postgres",
        "--to",
        "Bad Name",
        config=PROJECT,
        expect=r"^--to: 'Bad Name' is not valid; valid: a destination name",
        id="backup-to-pattern",
    ),
    case(
        "backup.postgres",
        "--no-local",
        config=PROJECT,
        expect=(
            r"^--no-local: needs a destination \(--to NAM"
            r"E or environments\.development\.backup_to\)"
        ),
        id="backup-no-local",
    ),
    case(
        "backup.postgres",
        "--keep-remote",
        config=PROJECT,
        expect=r"^--keep-remote: needs --host",
        id="backup-keep-remote",
    ),
    case(
        "backup.postgres",
        "--to",
        "offsite",
        "--host",
        "db",
        "--keep-remote",
        config=DEST,
        expect=r"^--keep-remote: the copy stays on the host; not with --to",
        id="backup-keep-remote-to",
    ),
    case(
        "backup.mysql",
        "--database",
        "postgres",
        config=PROJECT,
        expect=r"^--database: target 'postgres' is a postgres database, not mysql$",
        id="backup-mysql-target",
    ),
    case(
        "backup",
        "--db-type",
        "oracle",
        config=PROJECT,
        expect=r"^--db-type: 'oracle' is not valid; valid: postgres, mysql$",
        id="backup-db-type",
    ),
    # verify / restore / list / prune: selection flags, files, destinations
    case(
        "backup.verify",
        config=PROJECT,
        expect=r"^verify: give --file FILE or --latest$",
        id="verify-nothing",
    ),
    case(
        "backup.verify",
        "--file",
        "/nonexistent.sql.gz",
        config=PROJECT,
        expect=r"^--file: '/nonexistent\.sql\.gz' is not valid; valid: an existing backup file$",
        id="verify-file-missing",
    ),
    case(
        "backup.verify",
        "--file",
        "README.md",
        config=PROJECT,
        expect=r"^--file: 'README\.md' is not a backup file name",
        id="verify-file-name",
    ),
    case(
        "backup.verify",
        "--latest",
        "--from",
        "nowhere",
        config=PROJECT,
        expect=r"^--from: 'nowhere' is not valid",
        id="verify-from",
    ),
    case(
        "backup.verify",
        "--latest",
        "--trust-destination",
        config=PROJECT,
        expect=r"^--trust-destination: only with --from NAME \(a local backup is checked",
        id="verify-trust-destination-local",
    ),
    case(
        "backup.verify",
        "--latest",
        "--identity",
        "/etc",
        config=PROJECT,
        expect=r"^--identity: '/etc' is not valid; valid: a file .*is a directory$",
        id="verify-identity-dir",
    ),
    case(
        "backup.verify",
        "--latest",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid",
        id="verify-env",
    ),
    case(
        "backup.restore",
        "/nonexistent.dump",
        "--database",
        "x",
        config=PROJECT,
        expect=r"^FILE: '/nonexistent\.dump' is not valid; valid: an existing backup file$",
        id="restore-file-missing",
    ),
    case(
        "backup.restore",
        "README.md",
        config=PROJECT,
        expect=r"^--database: name the database to restore into$",
        id="restore-no-database",
    ),
    case(
        "backup.restore",
        "README.md",
        "--database",
        "bad-name",
        config=PROJECT,
        expect=r"^--database: 'bad-name' is not valid; valid: a database name",
        id="restore-database-name",
    ),
    case(
        "backup.restore",
        "README.md",
        "--database",
        "copy",
        config=PROJECT,
        expect=r"^FILE: 'README\.md' is not a backup file name",
        id="restore-file-name",
    ),
    case(
        "backup.restore",
        "README.md",
        "--database",
        "copy",
        "--jobs",
        "abc",
        config=PROJECT,
        expect=r"^--jobs: 'abc' is not valid",
        id="restore-jobs",
    ),
    case(
        "backup.restore",
        "x.dump",
        "--database",
        "copy",
        "--from",
        "nowhere",
        config=PROJECT,
        expect=r"^--from: 'nowhere' is not valid",
        id="restore-from",
    ),
    case(
        "backup.restore",
        "x.dump",
        "--database",
        "copy",
        "--trust-destination",
        config=PROJECT,
        expect=r"^--trust-destination: only with --from NAME",
        id="restore-trust-destination-local",
    ),
    case(
        "backup.list",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid; valid: development, production, staging$",
        id="list-env",
    ),
    case(
        "backup.list",
        "--from",
        "nowhere",
        config=PROJECT,
        expect=r"^--from: 'nowhere' is not valid; valid: \(none configured",
        id="list-from",
    ),
    case(
        "backup.list",
        "--output-dir",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--output-dir: '/etc/passwd' is not valid",
        id="list-output-dir",
    ),
    case(
        "backup.prune",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid",
        id="prune-env",
    ),
    case(
        "backup.prune",
        "--from",
        "UPPER",
        config=PROJECT,
        expect=r"^--from: 'UPPER' is not valid; valid: a destination name",
        id="prune-from-pattern",
    ),
    # backup.check: UNKNOWN (3) when it cannot check
    case(
        "backup.check",
        "--max-age",
        "abc",
        config=PROJECT,
        expect=r"^--max-age: 'abc' is not valid; valid: a duration",
        code=3,
        id="check-max-age",
    ),
    case(
        "backup.check",
        "--max-age",
        "0s",
        config=PROJECT,
        expect=r"^--max-age: '0s' is not valid",
        code=3,
        id="check-max-age-zero",
    ),
    case(
        "backup.check",
        "--warn-age",
        "1d",
        config=PROJECT,
        expect=r"^--warn-age: '1d' is not valid",
        code=3,
        id="check-warn-age",
    ),
    case(
        "backup.check",
        "--textfile",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--textfile: '/etc/passwd' is not valid",
        code=3,
        id="check-textfile-file",
    ),
    case(
        "backup.check",
        "--from",
        "nowhere",
        config=PROJECT,
        expect=r"^--from: 'nowhere' is not valid",
        code=3,
        id="check-from",
    ),
    case(
        "backup.check",
        "--trust-destination",
        config=PROJECT,
        expect=r"^--trust-destination: only with --from NAME",
        code=3,
        id="check-trust-destination-local",
    ),
    case(
        "backup.check",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid",
        code=3,
        id="check-env",
    ),
    # backup.schedule
    case(
        "backup.schedule",
        "--on-calendar",
        "$(reboot)",
        config=PROJECT,
        expect=r"^--on-calendar: '\$\(reboot\)' is not valid; valid: a systemd calendar event",
        id="schedule-calendar-chars",
    ),
    case(
        "backup.schedule",
        "--on-calendar",
        "sometimes",
        config=PROJECT,
        expect=r"^--on-calendar: 'sometimes' is not valid \(Failed to parse calendar",
        id="schedule-calendar",
    ),
    case(
        "backup.schedule",
        "--cron",
        "--on-calendar",
        "*-*-* 02:15:30",
        config=PROJECT,
        expect=r"^--cron: '\*-\*-\* 02:15:30' has no crontab equivalent here",
        id="schedule-cron",
    ),
    case(
        "backup.schedule",
        "--unit-dir",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--unit-dir: '/etc/passwd' is not valid; valid: a directory",
        id="schedule-unit-dir",
    ),
    case(
        "backup.schedule",
        "--max-age",
        "2d",
        config=PROJECT,
        expect=r"^--max-age: '2d' is not valid",
        id="schedule-max-age",
    ),
    case(
        "backup.schedule",
        "--to",
        "nowhere",
        config=PROJECT,
        expect=r"^--to: 'nowhere' is not valid",
        id="schedule-to",
    ),
    case(
        "backup.schedule",
        "--textfile",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--textfile: '/etc/passwd' is not valid",
        id="schedule-textfile",
    ),
    # backup.drill and backup.schedule --drill
    case(
        "backup.drill",
        "--env",
        "nope",
        config=PROJECT,
        expect=r"^--env: 'nope' is not valid",
        id="drill-env",
    ),
    case(
        "backup.drill",
        "--database",
        "nosuch",
        config=PROJECT,
        expect=r"^--database: 'nosuch' is not valid in development; valid: ",
        id="drill-database",
    ),
    case(
        "backup.drill",
        "--from",
        "nowhere",
        config=PROJECT,
        expect=r"^--from: 'nowhere' is not valid",
        id="drill-from",
    ),
    case(
        "backup.drill",
        "--from",
        "UPPER",
        config=PROJECT,
        expect=r"^--from: 'UPPER' is not valid; valid: a destination name",
        id="drill-from-pattern",
    ),
    case(
        "backup.drill",
        "--textfile",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--textfile: '/etc/passwd' is not valid",
        id="drill-textfile-file",
    ),
    case(
        "backup.drill",
        "--output-dir",
        "/etc/passwd",
        config=PROJECT,
        expect=r"^--output-dir: '/etc/passwd' is not valid",
        id="drill-output-dir-file",
    ),
    case(
        "backup.drill",
        "--identity",
        "/etc",
        config=PROJECT,
        expect=r"^--identity: '/etc' is not valid; valid: a file .*is a directory$",
        id="drill-identity-dir",
    ),
    case(
        "backup.drill",
        "--trust-destination",
        config=PROJECT,
        expect=r"^--trust-destination: only with --from NAME",
        id="drill-trust-destination-local",
    ),
    case(
        "backup.schedule",
        "--drill",
        "--max-age",
        "2h",
        config=PROJECT,
        expect=r"^--max-age: not with --drill \(the drill's staleness limit is backup\.drill\.max",
        id="schedule-drill-max-age",
    ),
    case(
        "backup.schedule",
        "--drill",
        config="backup: {drill: {on_calendar: '$(reboot)'}}\n",
        expect=(
            r"^backup\.drill\.on_calendar: '\$\(reboot\)' is not valid "
            r"\(set in -f .*\); valid: a systemd"
        ),
        id="drill-calendar-chars",
    ),
    case(
        "backup.schedule",
        "--drill",
        "--cron",
        config="backup: {drill: {on_calendar: '*-*-* 04:30:30'}}\n",
        expect=r"^--cron: '\*-\*-\* 04:30:30' has no crontab equivalent here",
        id="schedule-drill-cron",
    ),
    case(
        "backup.drill",
        config="backup: {drill: {evidence: 'a/b.jsonl'}}\n",
        expect=(
            r"^backup\.drill\.evidence: 'a/b\.jsonl' is not valid "
            r"\(set in -f .*\); valid: a file name"
        ),
        id="drill-evidence-slash",
    ),
    case(
        "backup.drill",
        config="backup: {drill: {max_age: '8d'}}\n",
        expect=(
            r"^backup\.drill\.max_age: '8d' is not valid " r"\(set in -f .*\); valid: a duration"
        ),
        id="drill-max-age",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_DRILL_MAX_AGE": "weekly"},
        expect=(
            r"^backup\.drill\.max_age: 'weekly' is not val"
            r"id \(set in INVOKE_BACKUP_DRILL_MAX_AGE\)"
        ),
        id="env-drill-max-age",
    ),
    # config keys: destinations, check, schedule, globals, per-environment default, ssh
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: ''}}}\n",
        expect=r"^backup\.destinations\.offsite\.url: '' is not valid",
        id="dest-url-empty",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: ':s3,access_key_id=AK:bucket'}}}\n",
        expect=(
            r"^backup\.destinations\.offsite\.url: ':s3,access_ke"
            r"y_id=AK:bucket' is not valid .*no connection strings"
        ),
        id="dest-url-connection-string",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {Bad: {url: 'x:y'}}}\n",
        expect=r"^backup\.destinations: 'Bad' is not valid .*a destination name",
        id="dest-name",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: 'x:y', env: ['not valid']}}}\n",
        expect=r"^backup\.destinations\.offsite\.env\.0: 'not valid' is not valid",
        id="dest-env",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: 'x:y', config_file: 5}}}\n",
        expect=r"^backup\.destinations\.offsite\.config_file: 5 is not valid",
        id="dest-config-file",
    ),
    case(
        "backup.postgres",
        config="backup: {signing_key: /nonexistent/id_ed25519}\n",
        expect=r"^backup\.signing_key: '/nonexistent/id_ed25519' is not valid .*does not exist$",
        id="signing-key-missing",
    ),
    case(
        "backup.verify",
        "--latest",
        config="backup: {allowed_signers: /etc}\n",
        expect=r"^backup\.allowed_signers: '/etc' is not valid",
        id="allowed-signers-dir",
    ),
    case(
        "backup.postgres",
        "--host",
        "db",
        "--keep-remote",
        config="backup: {signing_key: /etc/hostname}\n",
        expect=r"^--keep-remote: the copy stays on the host, where backup\.signing_key cannot",
        id="backup-keep-remote-signing",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: 'x:y', bucket: z}}}\n",
        expect=(
            r"^backup\.destinations\.offsite\.bucket: unk"
            r"nown key; valid keys: url, config_file, env, timeout$"
        ),
        id="dest-typo",
    ),
    case(
        "backup.check",
        "--warn-age",
        "30h",
        "--max-age",
        "26h",
        expect=(
            r"^--warn-age: 30h is not valid; valid: a duration shorter than the --max-age "
            r"\(26h\), or none$"
        ),
        code=3,
        id="check-warn-age-past-max-age",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: 'x:y', timeout: soon}}}\n",
        expect=(
            r"^backup\.destinations\.offsite\.timeout: 'soon' is not valid \(set in .*\); "
            r"valid: a duration like 90s, 10m or 1h30m, at least 1s$"
        ),
        id="dest-timeout-not-a-duration",
    ),
    case(
        "backup.list",
        config="backup: {destinations: {offsite: {url: 'x:y', timeout: 0s}}}\n",
        expect=r"^backup\.destinations\.offsite\.timeout: '0s' is not valid",
        id="dest-timeout-zero",
    ),
    case(
        "backup.postgres",
        "--to",
        "offsite",
        config="backup: {destinations: {offsite: {url: 'x:y', env: [FLOWLET_NO_SUCH_VAR]}}}\n",
        expect=(
            r"^backup\.destinations\.offsite\.env: environ"
            r"ment variable FLOWLET_NO_SUCH_VAR is not set$"
        ),
        id="dest-env-unset",
    ),
    case(
        "backup.list",
        config="backup: {check: {max_age: soon}}\n",
        expect=r"^backup\.check\.max_age: 'soon' is not valid \(set in -f ",
        id="check-key-max-age",
    ),
    case(
        "backup.list",
        config="backup: {check: {warn_age: 5}}\n",
        expect=r"^backup\.check\.warn_age: 5 is not valid",
        id="check-key-warn-age",
    ),
    case(
        "backup.list",
        config="backup: {schedule: {on_calendar: ''}}\n",
        expect=r"^backup\.schedule\.on_calendar: '' is not valid",
        id="schedule-key-calendar",
    ),
    case(
        "backup.list",
        config="backup: {schedule: {unit_prefix: 'a b'}}\n",
        expect=r"^backup\.schedule\.unit_prefix: 'a b' is not valid",
        id="schedule-key-prefix",
    ),
    case(
        "backup.list",
        config="backup: {schedule: {user: 'Root!'}}\n",
        expect=r"^backup\.schedule\.user: 'Root!' is not valid",
        id="schedule-key-user",
    ),
    case(
        "backup.list",
        config="backup: {schedule: {randomized_delay: x}}\n",
        expect=r"^backup\.schedule\.randomized_delay: 'x' is not valid",
        id="schedule-key-delay",
    ),
    case(
        "backup.list",
        config="backup: {globals: maybe}\n",
        expect=r"^backup\.globals: 'maybe' is not valid .*true or false",
        id="globals-key",
    ),
    case(
        "backup.list",
        config="environments: {staging: {backup_to: 'Bad'}}\n",
        expect=r"^environments\.staging\.backup_to: 'Bad' is not valid",
        id="env-backup-to-pattern",
    ),
    case(
        "backup.postgres",
        config="environments: {development: {backup_to: nowhere}}\n",
        expect=(
            r"^environments\.development\.backup_to: 'now"
            r"here' is not valid; valid: \(none configured"
        ),
        id="env-backup-to-unknown",
    ),
    case(
        "backup.list",
        config="ssh: {config_file: /etc}\n",
        expect=r"^ssh\.config_file: '/etc' is not valid",
        id="ssh-config-file-dir",
    ),
    case(
        "backup.list",
        config="ssh: {connect_timeout: 0}\n",
        expect=r"^ssh\.connect_timeout: 0 is not valid .*> 0",
        id="ssh-timeout",
    ),
    # database targets: the TLS policy (sslmode, sslrootcert)
    case(
        "backup.postgres",
        config="environments: {development: {databases: {postgres: {sslmode: verify}}}}\n",
        expect=(
            r"^environments\.development\.databases\.postgres\.sslmode: 'verify' is not valid "
            r"\(set in -f .*\); valid: auto, disable, allow, prefer, require, verify-ca, verify-full$"
        ),
        id="tls-sslmode-choice",
    ),
    case(
        "backup.postgres",
        config=(
            "environments: {development: {databases: {postgres: "
            "{host: db.example.com, sslmode: prefer}}}}\n"
        ),
        expect=(
            r"^environments\.development\.databases\.postgres\.sslmode: 'prefer' does not "
            r"authenticate the server at db\.example\.com \(not a loopback host\); "
            r"valid: verify-full, verify-ca$"
        ),
        id="tls-sslmode-weak-remote",
    ),
    case(
        "backup.postgres",
        config=(
            "environments: {development: {databases: {postgres: "
            "{host: '10.0.0.5', sslmode: disable}}}}\n"
        ),
        expect=r"^environments\.development\.databases\.postgres\.sslmode: 'disable' does not",
        id="tls-sslmode-disable-remote",
    ),
    case(
        "backup.mysql",
        config=(
            "environments: {development: {databases: {mysql: {engine: mysql, host: 127.0.0.1, "
            "port: 3306, name: shop, user: u, sslmode: verify-ca}}}}\n"
        ),
        expect=(
            r"^environments\.development\.databases\.mysql\.sslmode: 'verify-ca' is not valid "
            r"for a mysql target; valid: auto, disable, prefer, verify-full$"
        ),
        id="tls-sslmode-mysql-verify-ca",
    ),
    case(
        "backup.postgres",
        config="environments: {development: {databases: {postgres: {sslrootcert: ca.pem}}}}\n",
        expect=(
            r"^environments\.development\.databases\.postgres\.sslrootcert: 'ca\.pem' is not "
            r"valid .*; valid: an absolute path to a PEM file \(on the host the dump runs on\)$"
        ),
        id="tls-sslrootcert-relative",
    ),
    case(
        "backup.postgres",
        config=(
            "environments: {development: {databases: {postgres: "
            "{sslmode: prefer, sslrootcert: /etc/ssl/ca.pem}}}}\n"
        ),
        expect=(
            r"^environments\.development\.databases\.postgres\.sslrootcert: set, but sslmode "
            r"'prefer' does not verify the server certificate; use sslmode verify-full or "
            r"remove sslrootcert$"
        ),
        id="tls-sslrootcert-no-verify",
    ),
    case(
        "backup.postgres",
        project_yaml=TLS_PROJECT,
        env={"INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_POSTGRES_SSLMODE": "off"},
        expect=(
            r"^environments\.development\.databases\.postgres\.sslmode: 'off' is not valid "
            r"\(set in INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_POSTGRES_SSLMODE\)"
        ),
        id="env-tls-sslmode",
    ),
    case(
        "backup.postgres",
        project_yaml=TLS_PROJECT,
        env={"INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_POSTGRES_SSLROOTCERT": "/ca\n.pem"},
        expect=r"^environments\.development\.databases\.postgres\.sslrootcert: '/ca\\n\.pem' is",
        id="env-tls-sslrootcert-newline",
    ),
    # INVOKE_* variables
    case(
        "backup.list",
        env={"INVOKE_BACKUP_GLOBALS": "maybe"},
        expect=r"^INVOKE_BACKUP_GLOBALS: 'maybe' is not valid",
        id="env-globals",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_JOBS": "abc"},
        expect=r"^INVOKE_BACKUP_JOBS: 'abc' is not valid",
        id="env-jobs",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_FORMAT": "tar"},
        expect=r"^backup\.format: 'tar' is not valid \(set in INVOKE_BACKUP_FORMAT\)",
        id="env-format",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_CHECK_MAX_AGE": "abc"},
        expect=(
            r"^backup\.check\.max_age: 'abc' is not val"
            r"id \(set in INVOKE_BACKUP_CHECK_MAX_AGE\)"
        ),
        id="env-check-max-age",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_OUTPUT_DIR": "/etc/passwd"},
        expect=(
            r"^backup\.output_dir: '/etc/passwd' is not"
            r" valid \(set in INVOKE_BACKUP_OUTPUT_DIR\)"
        ),
        id="env-output-dir",
    ),
    case(
        "backup.list",
        env={"INVOKE_SSH_CONNECT_TIMEOUT": "soon"},
        expect=r"^INVOKE_SSH_CONNECT_TIMEOUT: 'soon' is not valid",
        id="env-ssh-timeout",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_SCHEDULE_UNIT_PREFIX": "a/b"},
        expect=(
            r"^backup\.schedule\.unit_prefix: 'a/b' is not val"
            r"id \(set in INVOKE_BACKUP_SCHEDULE_UNIT_PREFIX\)"
        ),
        id="env-unit-prefix",
    ),
]
