"""Bad input for setup and dev.*: every task and value flag, the dev.* and setup.* keys,
INVOKE_DEV_* / INVOKE_SETUP_* variables, and paths (a file where a directory is expected, a
path that cannot be written). Each fails before anything starts or is written."""

from __future__ import annotations

from tests.badinput import case

VALID_NAMES = r"valid: db, migrate, backend, frontend$"
FILE_NOT_DIR = (
    r"valid: a directory \(relative paths are relative to the project "
    r"root\); \S+ is not a directory$"
)

CASES = [
    # flags of every task
    case(
        "setup",
        "--env",
        "nope",
        expect=r"^--env: 'nope' is not valid; valid: development, production, staging$",
        id="setup-env",
    ),
    case("setup", "--env", "Dev", expect=r"^--env: 'Dev' is not valid", id="setup-env-case"),
    case(
        "dev.start",
        "--name",
        "api",
        expect=r"^--name: 'api' is not valid; " + VALID_NAMES,
        id="start-name",
    ),
    case(
        "dev.start",
        "--detach",
        "--name",
        "",
        expect=r"^--name: '' is not valid; " + VALID_NAMES,
        id="start-name-empty",
    ),
    case(
        "dev.stop",
        "--name",
        "web",
        expect=r"^--name: 'web' is not valid; " + VALID_NAMES,
        id="stop-name",
    ),
    case(
        "dev.restart",
        "--name",
        "DB",
        expect=r"^--name: 'DB' is not valid; " + VALID_NAMES,
        id="restart-name",
    ),
    case(
        "dev.logs",
        "--name",
        "api",
        expect=r"^--name: 'api' is not valid; valid: db, migrate, backend, frontend",
        id="logs-name",
    ),
    case(
        "dev.logs",
        "--lines",
        "abc",
        expect=r"^--lines: 'abc' is not valid; valid: an integer >= 1$",
        id="logs-lines-text",
    ),
    case(
        "dev.logs",
        "--lines",
        "0",
        expect=r"^--lines: 0 is not valid; valid: an integer >= 1$",
        id="logs-lines-zero",
    ),
    case(
        "dev.logs", "--lines", "1.5", expect=r"^--lines: '1\.5' is not valid", id="logs-lines-float"
    ),
    # dev.* keys
    case(
        "dev.status",
        config="dev: {processes: {backend: {port: http}}}\n",
        expect=(
            r"^dev\.processes\.backend\.port: 'http' is not valid \(set in -f .*\); "
            r"valid: a port number \(1-65535\)$"
        ),
        id="process-port-text",
    ),
    case(
        "dev.start",
        config="dev: {processes: {frontend: {port: 0}}}\n",
        expect=r"^dev\.processes\.frontend\.port: 0 is not valid",
        id="process-port-zero",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {restart: sometimes}}}\n",
        expect=(
            r"^dev\.processes\.backend\.restart: 'sometimes' is not valid .*; "
            r"valid: no, on-failure, always$"
        ),
        id="restart-policy",
    ),
    case(
        "dev.status",
        config="dev: {processes: {migrate: {kind: once}}}\n",
        expect=(
            r"^dev\.processes\.migrate\.kind: 'once' is not valid .*; " r"valid: service, oneshot$"
        ),
        id="process-kind",
    ),
    case(
        "dev.start",
        config="dev: {processes: {migrate: {restart: always}}}\n",
        expect=(
            r"^dev\.processes\.migrate\.restart: 'always' would run the oneshot migrate again "
            r"after each success; valid for kind oneshot: no, on-failure$"
        ),
        id="oneshot-restart-always",
    ),
    case(
        "dev.migrate",
        config="dev: {processes: {migrate: {kind: service}}}\n",
        expect=r"^dev\.processes\.migrate\.kind: dev\.migrate runs a oneshot; migrate is not one$",
        id="migrate-not-oneshot",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {max_restarts: -1}}}\n",
        expect=(
            r"^dev\.processes\.backend\.max_restarts: -1 is not valid .*; valid: an "
            r"integer from 0 to 1000$"
        ),
        id="max-restarts",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {backoff: 0}}}\n",
        expect=r"^dev\.processes\.backend\.backoff: 0 is not valid .*; valid: a number > 0$",
        id="backoff-zero",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {after: [cache]}}}\n",
        expect=(
            r"^dev\.processes\.backend\.after: unknown process 'cache'; valid: "
            r"backend, db, frontend, migrate$"
        ),
        id="after-unknown",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {after: [frontend]}, frontend: {after: [backend]}}}\n",
        expect=r"^dev\.processes\.backend\.after: a cycle \(backend -> frontend -> backend\)$",
        id="after-cycle",
    ),
    case(
        "dev.status",
        config="dev: {processes: {db: {command: [x], port: 1}}}\n",
        expect=r"^dev\.processes\.db: the name 'db' is reserved for the database$",
        id="reserved-db",
    ),
    case(
        "dev.status",
        config="dev: {processes: {Web: {command: [x]}}}\n",
        expect=r"^dev\.processes: 'Web' is not valid .*; valid: a key that is a process name",
        id="process-name",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {command: []}}}\n",
        expect=(
            r"^dev\.processes\.backend\.command: \[\] is not valid .*; valid: a "
            r"list \(at least 1\)"
        ),
        id="command-empty",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {command: 'python app.py'}}}\n",
        expect=(
            r"^dev\.processes\.backend\.command: 'python app\.py' is not valid .*; "
            r"valid: a list"
        ),
        id="command-string",
    ),
    case(
        "dev.start",
        config="dev: {processes: {backend: {command: ['{pyton}']}}}\n",
        expect=(
            r"^dev\.processes\.backend\.command: cannot expand '\{pyton\}' "
            r"\(KeyError: 'pyton'\); placeholders: "
        ),
        id="command-placeholder",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {health_url: 'ftp://x'}}}\n",
        expect=(
            r"^dev\.processes\.backend\.health_url: 'ftp://x' is not valid .*; "
            r"valid: an http:// or https:// URL, or empty$"
        ),
        id="health-url",
    ),
    case(
        "dev.status",
        config="dev: {processes: {frontend: {env_file_keys: ['DB PASSWORD']}}}\n",
        expect=(
            r"^dev\.processes\.frontend\.env_file_keys\.0: 'DB PASSWORD' is not "
            r"valid.*; valid: an environment variable name"
        ),
        id="env-file-keys",
    ),
    case(
        "dev.status",
        config="dev: {processes: {frontend: {env: {'1X': y}}}}\n",
        expect=(
            r"^dev\.processes\.frontend\.env: '1X' is not valid .*; valid: a key "
            r"that is an environment variable name"
        ),
        id="env-key",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {host: 'a b'}}}\n",
        expect=(
            r"^dev\.processes\.backend\.host: 'a b' is not valid .*; valid: a host "
            r"name or address"
        ),
        id="process-host",
    ),
    case(
        "dev.status",
        config="dev: {log_max_bytes: 10}\n",
        expect=r"^dev\.log_max_bytes: 10 is not valid .*; valid: an integer >= 4096$",
        id="log-max-bytes",
    ),
    case(
        "dev.status",
        config="dev: {log_keep: 99}\n",
        expect=r"^dev\.log_keep: 99 is not valid .*; valid: an integer from 0 to 50$",
        id="log-keep",
    ),
    case(
        "dev.logs",
        config="dev: {log_lines: 0}\n",
        expect=r"^dev\.log_lines: 0 is not valid",
        id="log-lines-key",
    ),
    case(
        "dev.status",
        config="dev: {stop_grace: -1}\n",
        expect=r"^dev\.stop_grace: -1 is not valid .*; valid: a number > 0$",
        id="stop-grace",
    ),
    case(
        "dev.status",
        config="dev: {database: mysql}\n",
        expect=r"^dev\.database: 'mysql' is not a development database target; valid: postgres$",
        id="database-target",
    ),
    case(
        "dev.status",
        config="dev: {postgres_user: 'Not A User'}\n",
        expect=r"^dev\.postgres_user: 'Not A User' is not valid .*; valid: a system user name$",
        id="postgres-user",
    ),
    case(
        "dev.status",
        config="dev: {procesess: {}}\n",
        expect=r"^dev\.procesess: unknown key; valid keys: flowlet_dir, ",
        id="dev-typo",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {restrat: always}}}\n",
        expect=r"^dev\.processes\.backend\.restrat: unknown key; valid keys: command, ",
        id="process-typo",
    ),
    # paths: a file where a directory is expected and back, paths that cannot be written
    case(
        "dev.logs",
        config="dev: {flowlet_dir: README.md}\n",
        expect=r"^dev\.flowlet_dir: 'README\.md' is not valid .*; " + FILE_NOT_DIR,
        id="flowlet-dir-file",
    ),
    case(
        "dev.status",
        config="dev: {env_file: tasks}\n",
        expect=r"^dev\.env_file: 'tasks' is not valid .*; \S+/tasks is a directory$",
        id="env-file-dir",
    ),
    case(
        "dev.status",
        config="dev: {postgres_dir: tasks.py}\n",
        expect=r"^dev\.postgres_dir: 'tasks\.py' is not valid .*; " + FILE_NOT_DIR,
        id="postgres-dir-file",
    ),
    case(
        "dev.status",
        config="dev: {processes: {backend: {cwd: tasks.py}}}\n",
        expect=r"^dev\.processes\.backend\.cwd: 'tasks\.py' is not valid .*; " + FILE_NOT_DIR,
        id="process-cwd-file",
    ),
    case(
        "dev.start",
        "--detach",
        config="dev: {flowlet_dir: /etc/passwd/flowlet}\n",
        expect=(
            r"^dev\.start: cannot write /etc/passwd/flowlet/run: Not a directory; "
            r"set dev\.flowlet_dir to a writable directory$"
        ),
        id="flowlet-dir-unwritable",
    ),
    case(
        "setup",
        config="dev: {env_file: /etc/passwd/flowlet/.env.local}\n",
        expect=(
            r"^setup: cannot write /etc/passwd/flowlet/\.env\.local: /etc/passwd is "
            r"not a directory$"
        ),
        id="env-file-unwritable",
    ),
    # setup.* keys
    case(
        "setup",
        config="setup: {env_template: tasks}\n",
        expect=r"^setup\.env_template: 'tasks' is not valid .*; \S+/tasks is a directory$",
        id="template-dir",
    ),
    case(
        "setup",
        config="setup: {env_template: no.template}\n",
        expect=r"^setup\.env_template: \S+/no\.template does not exist$",
        id="template-missing",
    ),
    case(
        "setup",
        config="setup: {frontend_dir: README.md}\n",
        expect=r"^setup\.frontend_dir: 'README\.md' is not valid .*; " + FILE_NOT_DIR,
        id="frontend-dir-file",
    ),
    case(
        "setup",
        config="setup: {backend_requirements: 5}\n",
        expect=r"^setup\.backend_requirements: 5 is not valid",
        id="requirements-int",
    ),
    case(
        "setup",
        config="setup: {backend_requirements: nope.txt}\n",
        expect=r"^setup\.backend_requirements: \S+/nope\.txt does not exist$",
        id="requirements-missing",
    ),
    case(
        "setup",
        config="setup: {npm: ci}\n",
        expect=r"^setup\.npm: unknown key; valid keys: backend_requirements, ",
        id="setup-typo",
    ),
    # INVOKE_DEV_* and INVOKE_SETUP_* variables
    case(
        "dev.status",
        env={"INVOKE_DEV_READY_TIMEOUT": "abc"},
        expect=r"^INVOKE_DEV_READY_TIMEOUT: 'abc' is not valid; valid: a number > 0$",
        id="env-ready-timeout",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_LOG_KEEP": "-1"},
        expect=r"^INVOKE_DEV_LOG_KEEP: -1 is not valid; valid: an integer from 0 to 50$",
        id="env-log-keep",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_LOG_MAX_BYTES": "1k"},
        expect=r"^INVOKE_DEV_LOG_MAX_BYTES: '1k' is not valid; valid: an integer >= 4096$",
        id="env-log-max-bytes",
    ),
    case(
        "dev.logs",
        env={"INVOKE_DEV_LOG_LINES": "many"},
        expect=r"^INVOKE_DEV_LOG_LINES: 'many' is not valid",
        id="env-log-lines",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_PROCESSES_BACKEND_PORT": "http"},
        expect=r"^INVOKE_DEV_PROCESSES_BACKEND_PORT: 'http' is not valid; valid: a port number",
        id="env-process-port",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_PROCESSES_FRONTEND_RESTART": "sometimes"},
        expect=(
            r"^dev\.processes\.frontend\.restart: 'sometimes' is not valid \(set in "
            r"INVOKE_DEV_PROCESSES_FRONTEND_RESTART\)"
        ),
        id="env-restart",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_PROCESSES_BACKEND_MAX_RESTARTS": "-2"},
        expect=r"^INVOKE_DEV_PROCESSES_BACKEND_MAX_RESTARTS: -2 is not valid",
        id="env-max-restarts",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_DATABASE": "mysql"},
        expect=r"^dev\.database: 'mysql' is not a development database target",
        id="env-database",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_FLOWLET_DIR": "/etc/passwd"},
        expect=(
            r"^dev\.flowlet_dir: '/etc/passwd' is not valid \(set in "
            r"INVOKE_DEV_FLOWLET_DIR\); valid: a directory"
        ),
        id="env-flowlet-dir-file",
    ),
    case(
        "setup",
        env={"INVOKE_SETUP_DEV_START_SCRIPT": "/tmp"},
        expect=(
            r"^setup\.dev_start_script: '/tmp' is not valid \(set in "
            r"INVOKE_SETUP_DEV_START_SCRIPT\); .*/tmp is a directory$"
        ),
        id="env-script-dir",
    ),
]
