"""Bad input to the deploy tasks and ``inv setup --env staging|production``: flags, ``deploy.*``
config keys, ``INVOKE_DEPLOY_*`` variables and paths. Each fails with one line naming what is
wrong, before anything talks to a cluster."""

from __future__ import annotations

from tests.badinput import case

P = "{}\n"  # the project's invoke.yaml, nothing more (an in-process run loads no project file)
DIGEST = "sha256:" + "a" * 64
DURATION = "valid: a duration like 90s, 10m or 1h30m, at least 60s"

CASES = [
    # inv deploy
    case("deploy", "--timeout", "abc", config=P, expect=rf"^--timeout: 'abc' is not valid; {DURATION}$", id="deploy-timeout-text"),
    case("deploy", "--timeout", "30s", config=P, expect=rf"^--timeout: '30s' is not valid; {DURATION}$", id="deploy-timeout-short"),
    case("deploy", "--image-tag", "-bad", config=P, expect=r"^--image-tag: '-bad' is not valid; valid: an image tag", id="deploy-image-tag"),
    case("deploy", "--image-digest", "backend=sha256:xyz", config=P, expect=r"^--image-digest: 'backend=sha256:xyz' is not valid; valid: COMPONENT=sha256:<64 hex digits>, COMPONENT backend or frontend$", id="deploy-digest-short"),
    case("deploy", "--image-digest", f"web={DIGEST}", config=P, expect=r"^--image-digest: 'web=sha256:a+' is not valid; valid: COMPONENT=sha256", id="deploy-digest-component"),
    case("deploy", "--env", "qa", config=P, expect=r"^--env: 'qa' is not valid; valid: development, production, staging$", id="deploy-env"),
    case("deploy", "--env", "staging", "--namespace", "Bad_NS", config=P, expect=r"^--namespace: 'Bad_NS' is not valid; valid: a DNS-1123 label", id="deploy-namespace"),
    case("deploy", "--env", "staging", "--namespace", "", config=P, expect=r"^--namespace: '' is not valid; valid: a DNS-1123 label", id="deploy-namespace-empty"),
    case("deploy", "--env", "staging", "--context", "-x", config=P, expect=r"^--context: kube context '-x' not found in kubeconfig; available: none$", id="deploy-context"),
    # inv deploy.recover / deploy.rollback / deploy.unlock
    case("deploy.recover", "--timeout", "5x", config=P, expect=rf"^--timeout: '5x' is not valid; {DURATION}$", id="recover-timeout"),
    case("deploy.recover", "--env", "nope", config=P, expect=r"^--env: 'nope' is not valid", id="recover-env"),
    case("deploy.rollback", "--revision", "abc", config=P, expect=r"^--revision: 'abc' is not valid; valid: 0 \(the previous revision\) or a revision >= 1$", id="rollback-revision-text"),
    case("deploy.rollback", "--revision", "-1", config=P, expect=r"^--revision: -1 is not valid; valid: 0 \(the previous revision\)", id="rollback-revision-negative"),
    case("deploy.rollback", "--timeout", "0s", config=P, expect=rf"^--timeout: '0s' is not valid; {DURATION}$", id="rollback-timeout"),
    case("deploy.unlock", "--env", "prod", config=P, expect=r"^--env: 'prod' is not valid; valid: development, production, staging$", id="unlock-env"),
    case("deploy.unlock", "--env", "staging", "--namespace", "UPPER", config=P, expect=r"^--namespace: 'UPPER' is not valid", id="unlock-namespace"),
    # inv deploy.diff / status / history
    case("deploy.diff", "--image-tag", "a:b", config=P, expect=r"^--image-tag: 'a:b' is not valid; valid: an image tag", id="diff-image-tag"),
    case("deploy.diff", "--image-digest", "x", config=P, expect=r"^--image-digest: 'x' is not valid", id="diff-digest"),
    case("deploy.status", "--env", "qa", config=P, expect=r"^--env: 'qa' is not valid", id="status-env"),
    case("deploy.history", "--max", "0", config=P, expect=r"^--max: 0 is not valid; valid: an integer from 1 to 1000$", id="history-max-zero"),
    case("deploy.history", "--max", "-1", config=P, expect=r"^--max: -1 is not valid; valid: an integer from 1 to 1000$", id="history-max-negative"),
    case("deploy.history", "--max", "abc", config=P, expect=r"^--max: 'abc' is not valid; valid: an integer from 1 to 1000$", id="history-max-text"),
    case("deploy.history", "--max", "1001", config=P, expect=r"^--max: 1001 is not valid", id="history-max-big"),
    # inv deploy.render / deploy.lint: paths
    case("deploy.render", "--output", "/etc/passwd", config=P, expect=r"^--output: '/etc/passwd' is not valid; valid: a directory .*; /etc/passwd is not a directory$", id="render-output-file"),
    case("deploy.render", "--env", "staging", "--output", "/proc/version/x", config=P, expect=r"^--output: '/proc/version/x' is not valid; ", id="render-output-unwritable"),
    case("deploy.render", "--env", "qa", config=P, expect=r"^--env: 'qa' is not valid", id="render-env"),
    case("deploy.render", "--image-digest", "frontend=sha256:abc", config=P, expect=r"^--image-digest: 'frontend=sha256:abc' is not valid", id="render-digest"),
    case("deploy.lint", "--env", "qa", config=P, expect=r"^--env: 'qa' is not valid", id="lint-env"),
    # inv setup --env staging|production (the cluster path)
    case("setup", "--env", "staging", "--image-tag", "-x", config=P, expect=r"^--image-tag: '-x' is not valid; valid: an image tag", id="setup-image-tag"),
    case("setup", "--env", "production", "--namespace", "Bad_NS", config=P, expect=r"^--namespace: 'Bad_NS' is not valid", id="setup-namespace"),
    case("setup", "--env", "staging", config="deploy: {secret: {env_file: '/nonexistent/.env.{env}'}}\n", expect=r"^deploy\.secret\.env_file: '/nonexistent/\.env\.staging' is not valid; valid: an existing file$", id="setup-env-file-missing"),
    case("setup", "--env", "production", config="deploy: {secret: {env_file: '', env_vars: []}}\n", expect=r"^deploy\.secret: set env_file or env_vars", id="setup-no-secret-source"),
    case("setup", "--env", "staging", config="deploy: {chart: /nonexistent-chart}\n", expect=r"^deploy\.chart: '/nonexistent-chart' is not valid; valid: an existing directory \(the Helm chart\)$", id="setup-chart-missing"),
    # deploy.* config keys (-f files)
    case("deploy", config="deploy: {timeout: abc}\n", expect=r"^deploy\.timeout: 'abc' is not valid \(set in -f \S+\); valid: a duration", id="key-timeout"),
    case("deploy", config="deploy: {lock_stale_after: 5s}\n", expect=r"^deploy\.lock_stale_after: '5s' is not valid \(set in -f \S+\); valid: a duration like 90s, 10m or 1h30m, at least 10s$", id="key-lock-stale-short"),
    case("deploy", config="deploy: {lock_stale_after: 10}\n", expect=r"^deploy\.lock_stale_after: 10 is not valid", id="key-lock-stale-number"),
    case("deploy", config=f"deploy: {{image_digests: {{web: '{DIGEST}'}}}}\n", expect=r"^deploy\.image_digests: 'web' is not valid .*valid: a key that is a component: backend or frontend$", id="key-digest-component"),
    case("deploy", config="deploy: {image_digests: {backend: latest}}\n", expect=r"^deploy\.image_digests\.backend: 'latest' is not valid .*; valid: an image digest", id="key-digest-value"),
    case("deploy", config="deploy: {secret: {name: Bad_Name}}\n", expect=r"^deploy\.secret\.name: 'Bad_Name' is not valid", id="key-secret-name"),
    case("deploy", config="deploy: {secret: {env_vars: ['my var']}}\n", expect=r"^deploy\.secret\.env_vars\.0: 'my var' is not valid", id="key-secret-env-var"),
    case("deploy", config="deploy: {chart: /etc/passwd}\n", expect=r"^deploy\.chart: '/etc/passwd' is not valid .*; /etc/passwd is not a directory$", id="key-chart-file"),
    case("deploy", config="deploy: {manifests: /nonexistent-manifests}\n", expect=r"^deploy\.manifests: '/nonexistent-manifests' is not valid; valid: an existing directory \(the namespace manifests\)$", id="key-manifests-missing"),
    case("deploy", config="deploy: {audit_log: /tmp}\n", expect=r"^deploy\.audit_log: '/tmp' is not valid .*; /tmp is a directory$", id="key-audit-log-dir"),
    case("deploy", config="deploy: {rollout_deployments: []}\n", expect=r"^deploy\.rollout_deployments: \[\] is not valid .*valid: a list \(at least 1\)", id="key-rollout-empty"),
    case("deploy", config="deploy: {field_manager: 'a b'}\n", expect=r"^deploy\.field_manager: 'a b' is not valid", id="key-field-manager"),
    case("deploy", config="deploy: {history_max: 0}\n", expect=r"^deploy\.history_max: 0 is not valid .*; valid: an integer >= 1$", id="key-history-max"),
    case("deploy", config="deploy: {lock: {stale: 1m}}\n", expect=r"^deploy\.lock: unknown key; valid keys: chart, manifests", id="key-unknown"),
    # INVOKE_DEPLOY_* variables
    case("deploy", config=P, env={"INVOKE_DEPLOY_TIMEOUT": "abc"}, expect=r"^deploy\.timeout: 'abc' is not valid \(set in INVOKE_DEPLOY_TIMEOUT\)", id="env-timeout"),
    case("deploy", config=P, env={"INVOKE_DEPLOY_HISTORY_MAX": "abc"}, expect=r"^INVOKE_DEPLOY_HISTORY_MAX: 'abc' is not valid; valid: an integer >= 1$", id="env-history-max"),
    case("deploy", config=P, env={"INVOKE_DEPLOY_LOCK_STALE_AFTER": "1s"}, expect=r"^deploy\.lock_stale_after: '1s' is not valid \(set in INVOKE_DEPLOY_LOCK_STALE_AFTER\)", id="env-lock-stale"),
    case("deploy", config=P, env={"INVOKE_DEPLOY_LOG_LINES": "-5"}, expect=r"^INVOKE_DEPLOY_LOG_LINES: -5 is not valid; valid: an integer >= 1$", id="env-log-lines"),
    case("deploy", config=P, env={"INVOKE_DEPLOY_ROLLOUT_DEPLOYMENTS": '["Bad"]'}, expect=r"^INVOKE_DEPLOY_ROLLOUT_DEPLOYMENTS\.0: 'Bad' is not valid; valid: a DNS-1123 label", id="env-rollout"),
    case("deploy.render", config=P, env={"INVOKE_DEPLOY_AUDIT_LOG": "/"}, expect=r"^deploy\.audit_log: '/' is not valid \(set in INVOKE_DEPLOY_AUDIT_LOG\).*is a directory$", id="env-audit-log-dir"),
    case("deploy.lint", config=P, env={"INVOKE_DEPLOY_CHART": "/nonexistent"}, expect=r"^deploy\.chart: '/nonexistent' is not valid; valid: an existing directory", id="env-chart"),
]  # fmt: skip
