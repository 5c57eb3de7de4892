"""Bad input that every task meets before it runs: config files, INVOKE_* variables, the shape
of the shared environments key."""

from __future__ import annotations

from tests.badinput import case

CASES = [
    # -f that names no config file (Invoke ignored a missing one and crashed on a directory)
    case(
        "-f",
        "/nonexistent/flowlet.yaml",
        "backup.list",
        expect=r"^-f: '/nonexistent/flowlet\.yaml' is not valid \(does not exist\); valid: an ",
        id="runtime-file-missing",
    ),
    case(
        "-f",
        "/etc",
        "backup.list",
        expect=r"^-f: '/etc' is not valid \(is a directory\); valid: an existing \.yaml",
        id="runtime-file-directory",
    ),
    case(
        "-f",
        "/etc/hostname",
        "backup.list",
        expect=r"^-f: '/etc/hostname' is not valid \(unsupported extension\)",
        id="runtime-file-extension",
    ),
    # -f files that are not valid YAML or not a mapping
    case("backup.list", config="a: [\n", expect=r"^\S+\.yaml:2: not valid YAML", id="yaml-syntax"),
    case("backup.list", config="- a\n- b\n", expect=r"the top level is a list", id="yaml-list"),
    case("dev.status", config="42\n", expect=r"the top level is 42", id="yaml-scalar"),
    case("lint", config="\tlint: {}\n", expect=r"not valid YAML", id="yaml-tab"),
    # wrong shapes (a value where a mapping is expected and back)
    case(
        "backup.list",
        config="environments: []\n",
        expect=r"^environments: a list \(\[\]\) is not valid",
        id="environments-list",
    ),
    case(
        "deploy.render",
        config="environments: {staging: 5}\n",
        expect=r"^environments\.staging: 5 is not valid",
        id="environment-scalar",
    ),
    case(
        "deploy.render",
        config="deploy: {secret: 5}\n",
        expect=r"^deploy\.secret: 5 is not valid",
        id="deploy-secret-scalar",
    ),
    case(
        "backup.list",
        config="backup: {retention: weekly}\n",
        expect=r"^backup\.retention: 'weekly' is not valid",
        id="retention-scalar",
    ),
    case(
        "backup.list",
        config="backup: [1]\n",
        expect=r"^backup: a list \(\[1\]\) is not valid",
        id="backup-list",
    ),
    case(
        "dev.status",
        config="environments: {development: {databases: [pg]}}\n",
        expect=r"^environments\.development\.databases: a list \(\['pg'\]\) is not valid",
        id="databases-list",
    ),
    # unknown keys (typos) in our topics
    case(
        "backup.list",
        config="backup: {levle: 3}\n",
        expect=r"^backup\.levle: unknown key; valid keys: output_dir",
        id="typo-backup",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {namespac: x}}\n",
        expect=r"^environments\.staging\.namespac: unknown key",
        id="typo-environment",
    ),
    # values of the wrong type or out of range
    case(
        "backup.list",
        config="backup: {level: abc}\n",
        expect=r"^backup\.level: 'abc' is not valid \(set in -f .*\); valid: an integer from 0 to 19",
        id="level-text",
    ),
    case(
        "backup.list",
        config="backup: {level: 99}\n",
        expect=r"^backup\.level: 99 is not valid",
        id="level-range",
    ),
    case(
        "dev.status",
        config="dev: {ready_timeout: abc}\n",
        expect=r"^dev\.ready_timeout: 'abc' is not valid",
        id="ready-timeout-text",
    ),
    case(
        "dev.status",
        config="dev: {ready_timeout: 0}\n",
        expect=r"^dev\.ready_timeout: 0 is not valid",
        id="ready-timeout-zero",
    ),
    case(
        "lint",
        config="lint: {jobs: abc}\n",
        expect=r"^lint\.jobs: 'abc' is not valid",
        id="core-lint-jobs-text",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {confirm: maybe}}\n",
        expect=r"^environments\.staging\.confirm: 'maybe' is not valid \(set in -f .*\); valid: true or false",
        id="confirm-word",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {namespace: null}}\n",
        expect=r"^environments\.staging\.namespace: None is not valid",
        id="namespace-null",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {namespace: 123}}\n",
        expect=r"^environments\.staging\.namespace: 123 is not valid",
        id="namespace-int",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {namespace: yes}}\n",
        expect=r"^environments\.staging\.namespace: True is not valid",
        id="namespace-bool",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {namespace: Team_A}}\n",
        expect=r"^environments\.staging\.namespace: 'Team_A' is not valid",
        id="namespace-case",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {release: Flowlet}}\n",
        expect=r"^environments\.staging\.release: 'Flowlet' is not valid .*; valid: a Helm release name",
        id="release-case",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {release: '" + "a" * 54 + "'}}\n",
        expect=r"^environments\.staging\.release: 'a{54}' is not valid",
        id="release-long",
    ),
    case(
        "deploy.render",
        config="environments: {staging: {kube_context: '--all'}}\n",
        expect=r"^environments\.staging\.kube_context: '--all' is not valid",
        id="context-option",
    ),
    case(
        "backup.list",
        config="environments: {Prod: {namespace: x}}\n",
        expect=r"^environments: 'Prod' is not valid .*; valid: a key that is an environment name",
        id="env-name",
    ),
    case(
        "backup.list",
        config="environments: {staging: {databases: {pg: {engine: oracle}}}}\n",
        expect=r"^environments\.staging\.databases\.pg\.engine: 'oracle' is not valid .*; valid: postgres, mysql",
        id="engine",
    ),
    case(
        "backup.list",
        config="environments: {staging: {databases: {pg: {port: 70000}}}}\n",
        expect=r"^environments\.staging\.databases\.pg\.port: 70000 is not valid .*; valid: a port number",
        id="port-range",
    ),
    case(
        "backup.list",
        config="environments: {staging: {databases: {pg: {password_env: 'my pass'}}}}\n",
        expect=r"^environments\.staging\.databases\.pg\.password_env: 'my pass' is not valid",
        id="password-env-name",
    ),
    # INVOKE_* variables
    case(
        "backup.list",
        env={"INVOKE_BACKUP_LEVEL": "abc"},
        expect=r"^INVOKE_BACKUP_LEVEL: 'abc' is not valid; valid: an integer from 0 to 19",
        id="env-level-text",
    ),
    case(
        "backup.list",
        env={"INVOKE_BACKUP_LEVEL": "50"},
        expect=r"^INVOKE_BACKUP_LEVEL: 50 is not valid; valid: an integer from 0 to 19",
        id="env-level-range",
    ),
    case(
        "deploy.render",
        env={"INVOKE_ENVIRONMENTS_STAGING_CONFIRM": "maybe"},
        expect=r"^INVOKE_ENVIRONMENTS_STAGING_CONFIRM: 'maybe' is not valid; valid: one of true",
        id="env-confirm-word",
    ),
    case(
        "dev.status",
        env={"INVOKE_DEV_STOP_GRACE": "soon"},
        expect=r"^INVOKE_DEV_STOP_GRACE: 'soon' is not valid; valid: a number",
        id="env-float",
    ),
    case(
        "lint",
        env={"INVOKE_LINT_JOBS": "-3"},
        expect=r"^INVOKE_LINT_JOBS: -3 is not valid; valid: an integer from 0 to 64",
        id="env-jobs-negative",
    ),
    case(
        "deploy.render",
        env={"INVOKE_ENVIRONMENTS_STAGING_NAMESPACE": "Bad_NS"},
        expect=r"^environments\.staging\.namespace: 'Bad_NS' is not valid \(set in INVOKE_ENVIRONMENTS_STAGING_NAMESPACE\)",
        id="env-namespace",
    ),
    case(
        "backup.list",
        env={"INVOKE_RUN_ECHO": "perhaps"},
        expect=r"^INVOKE_RUN_ECHO: 'perhaps' is not valid",
        id="env-invoke-own-bool",
    ),
    # the project's own invoke.yaml, read by the real inv
    case(
        "--list",
        project_yaml="environments: [\n",
        expect=r"invoke\.yaml:2: not valid YAML",
        id="project-yaml-syntax",
    ),
    case(
        "dev.status",
        project_yaml="environments: []\n",
        expect=r"^environments: a list \(\[\]\) is not valid \(set in \S*invoke\.yaml\)",
        id="project-yaml-shape",
    ),
]
