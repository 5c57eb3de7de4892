"""Bad input of the monitoring tasks: every task, every value flag, the ``monitoring.*`` keys,
``INVOKE_MONITORING_*`` variables and paths. Each fails before any kubectl/helm runs."""

from __future__ import annotations

from tests.badinput import Case, case

DNS = r"valid: a DNS-1123 label"
PORT = r"valid: a port number \(1-65535\)$"
F = r"\(set in -f \S+\)"  # where a -f value was set
VERSION = r"valid: an exact chart version"


def flags(task: str, *argv: str, id: str, expect: str) -> Case:
    """``inv monitoring.<task> <argv>``."""
    return case(f"monitoring.{task}", *argv, expect=expect, code=1, id=id)


def key(task: str, yaml: str, *, id: str, expect: str) -> Case:
    """``inv -f FILE monitoring.<task>``: ``yaml`` merged over the project's invoke.yaml."""
    return case(f"monitoring.{task}", config=yaml + "\n", expect=expect, code=1, id=id)


def var(task: str, name: str, value: str, *, id: str, expect: str) -> Case:
    """``NAME=value inv monitoring.<task>``."""
    return case(f"monitoring.{task}", env={name: value}, expect=expect, code=1, id=id)


OFF = "{enabled: false}"

# fmt: off
CASES = [
    # --env: every task resolves it the same way
    flags("setup", "--env", "nope", id="mon-setup-env",
          expect=r"^--env: 'nope' is not valid; valid: development, production, staging$"),
    flags("status", "--env", "Staging", id="mon-status-env",
          expect=r"^--env: 'Staging' is not valid; valid: development"),
    flags("uninstall", "--env", "prod", id="mon-uninstall-env",
          expect=r"^--env: 'prod' is not valid"),
    flags("grafana", "--env", "", id="mon-grafana-env-empty", expect=r"^--env: '' is not valid"),
    flags("jaeger", "--env", "qa", id="mon-jaeger-env", expect=r"^--env: 'qa' is not valid"),
    # --mon-namespace / --app-namespace: DNS-1123 labels, never empty
    flags("setup", "--mon-namespace", "Bad_NS", id="mon-setup-mon-namespace",
          expect=rf"^--mon-namespace: 'Bad_NS' is not valid; {DNS}"),
    flags("status", "--mon-namespace", "", id="mon-status-mon-namespace-empty",
          expect=rf"^--mon-namespace: '' is not valid; {DNS}"),
    flags("uninstall", "--mon-namespace", "m" * 64, id="mon-uninstall-mon-namespace-long",
          expect=r"^--mon-namespace: 'm{64}' is not valid; .*at most 63 characters"),
    flags("grafana", "--mon-namespace", "-monitoring-", id="mon-grafana-mon-namespace-dash",
          expect=rf"^--mon-namespace: '-monitoring-' is not valid; {DNS}"),
    flags("status", "--app-namespace", "Team A", id="mon-status-app-namespace",
          expect=rf"^--app-namespace: 'Team A' is not valid; {DNS}"),
    flags("status", "--app-namespace", "", id="mon-status-app-namespace-empty",
          expect=rf"^--app-namespace: '' is not valid; {DNS}"),
    # --context: a kube context name (never an option, never with spaces)
    flags("setup", "--context=--all", id="mon-setup-context-option",
          expect=r"^--context: '--all' is not valid; valid: a kube context name"),
    flags("status", "--context", "my cluster", id="mon-status-context-space",
          expect=r"^--context: 'my cluster' is not valid"),
    flags("jaeger", "--context", "", id="mon-jaeger-context-empty",
          expect=r"^--context: '' is not valid"),
    # --port: text converted by the schema (a Port kind)
    flags("grafana", "--port", "abc", id="mon-grafana-port-text",
          expect=rf"^--port: 'abc' is not valid; {PORT}"),
    flags("jaeger", "--port", "70000", id="mon-jaeger-port-range",
          expect=rf"^--port: 70000 is not valid; {PORT}"),
    flags("grafana", "--port", "0", id="mon-grafana-port-zero",
          expect=rf"^--port: 0 is not valid; {PORT}"),
    flags("jaeger", "--port", "16686.5", id="mon-jaeger-port-float",
          expect=rf"^--port: '16686.5' is not valid; {PORT}"),
    # monitoring.* keys in a -f file
    key("status", "monitoring: [a]", id="mon-key-list",
        expect=rf"^monitoring: a list \(\['a'\]\) is not valid {F}; valid: a mapping"),
    key("status", "monitoring: {namespce: x}", id="mon-key-typo",
        expect=r"^monitoring\.namespce: unknown key; valid keys: namespace, values_dir"),
    key("status", "monitoring: {namespace: Bad_NS}", id="mon-key-namespace",
        expect=rf"^monitoring\.namespace: 'Bad_NS' is not valid {F}; {DNS}"),
    key("setup", "monitoring: {namespace: ''}", id="mon-key-namespace-empty",
        expect=rf"^monitoring\.namespace: '' is not valid {F}; {DNS}"),
    key("uninstall", "monitoring: {namespace: 123}", id="mon-key-namespace-int",
        expect=rf"^monitoring\.namespace: 123 is not valid {F}; {DNS}"),
    key("setup", "monitoring: {values_dir: README.md}", id="mon-key-values-dir-is-a-file",
        expect=rf"^monitoring\.values_dir: 'README\.md' is not valid {F}; valid: a directory "
               r".*README\.md is not a directory"),
    key("setup", "monitoring: {values_dir: 5}", id="mon-key-values-dir-int",
        expect=rf"^monitoring\.values_dir: 5 is not valid {F}; valid: a directory"),
    key("setup", "monitoring: {values_dir: nowhere}", id="mon-key-values-dir-missing",
        expect=rf"^monitoring\.values_dir: 'nowhere' is not valid {F}; valid: an existing "
               r"directory \(\S+/nowhere does not exist\)$"),
    key("test-rules", "monitoring: {rule_tests: README.md}", id="mon-key-rule-tests-is-a-file",
        expect=rf"^monitoring\.rule_tests: 'README\.md' is not valid {F}; valid: a directory "
               r".*README\.md is not a directory"),
    key("test-rules", "monitoring: {rule_tests: [a]}", id="mon-key-rule-tests-list",
        expect=rf"^monitoring\.rule_tests: \['a'\] is not valid {F}; valid: a directory"),
    key("test-rules", "monitoring: {rule_tests: no-tests}", id="mon-key-rule-tests-missing",
        expect=rf"^monitoring\.rule_tests: 'no-tests' is not valid {F}; valid: an existing "
               r"directory \(\S+/no-tests is none\)$"),
    key("test-rules", "monitoring: {components: {kube_prometheus_stack: {values: x.yaml}}}",
        id="mon-key-test-rules-values-missing",
        expect=rf"^monitoring\.components\.kube_prometheus_stack\.values: 'x\.yaml' is not "
               rf"valid {F}; valid: a file in monitoring\.values_dir \(\S+/x\.yaml is none\)$"),
    var("test-rules", "INVOKE_MONITORING_RULE_TESTS", "invoke.yaml", id="mon-env-rule-tests-file",
        expect=r"^monitoring\.rule_tests: 'invoke\.yaml' is not valid \(set in "
               r"INVOKE_MONITORING_RULE_TESTS\); valid: a directory .*is not a directory"),
    # monitoring.test-alert
    flags("test-alert", "--severity", "info", id="mon-test-alert-severity",
          expect=r"^--severity: 'info' is not valid; valid: critical, warning$"),
    flags("test-alert", "--receiver", "Pager!", id="mon-test-alert-receiver",
          expect=r"^--receiver: 'Pager!' is not valid; valid: a receiver name"),
    flags("test-alert", "--receiver", "", id="mon-test-alert-receiver-empty",
          expect=r"^--receiver: '' is not valid"),
    flags("test-alert", "--port", "0", id="mon-test-alert-port", expect=rf"^--port: 0 is not valid; {PORT}"),
    flags("test-alert", "--env", "qa", id="mon-test-alert-env", expect=r"^--env: 'qa' is not valid"),
    key("test-alert", "monitoring: {local_ports: {alertmanager: 99999}}",
        id="mon-key-local-ports-alertmanager",
        expect=rf"^monitoring\.local_ports\.alertmanager: 99999 is not valid {F}; {PORT}"),
    # monitoring.alerting: receivers and routes
    key("setup", "monitoring: {alerting: {critical: [pager]}}", id="mon-key-alerting-route-unknown",
        expect=r"^monitoring\.alerting\.critical: 'pager' is not in monitoring\.alerting\."
               r"receivers; valid: \(none configured\)$"),
    key("setup", "monitoring: {alerting: {receivers: {pager: {type: opsgenie, secret_env: K}}}}",
        id="mon-key-alerting-type",
        expect=rf"^monitoring\.alerting\.receivers\.pager\.type: 'opsgenie' is not valid {F}; "
               r"valid: slack, pagerduty, email, webhook$"),
    key("setup", "monitoring: {alerting: {receivers: {chat: {type: slack}}}}",
        id="mon-key-alerting-secret-env-missing",
        expect=r"^monitoring\.alerting\.receivers\.chat\.secret_env: missing \(the variable "
               r"holding the slack receiver's secret\)$"),
    key("setup", "monitoring: {alerting: {receivers: {chat: {type: slack, secret_env: 'A B'}}}}",
        id="mon-key-alerting-secret-env-bad",
        expect=rf"^monitoring\.alerting\.receivers\.chat\.secret_env: 'A B' is not valid {F}; "
               r"valid: an environment variable name"),
    key("status", "monitoring: {alerting: {receivers: {Chat_1: {type: slack, secret_env: A}}}}",
        id="mon-key-alerting-receiver-name",
        expect=rf"^monitoring\.alerting\.receivers: 'Chat_1' is not valid {F}; valid: a key that "
               r"is a receiver name"),
    key("setup", "monitoring: {alerting: {receivers: {'null': {type: webhook, secret_env: A}}}}",
        id="mon-key-alerting-receiver-null",
        expect=r"^monitoring\.alerting\.receivers\.null: 'null' is reserved"),
    key("setup", "monitoring: {alerting: {receivers: {mail: {type: email, secret_env: P, "
        "to: a@example.com, from: b@example.com}}}}", id="mon-key-alerting-email-smarthost",
        expect=r"^monitoring\.alerting\.receivers\.mail\.smarthost: missing \(needed by email\)$"),
    key("setup", "monitoring: {alerting: {receivers: {mail: {type: email, secret_env: P, "
        "smarthost: smtp.example.com}}}}", id="mon-key-alerting-email-smarthost-port",
        expect=rf"^monitoring\.alerting\.receivers\.mail\.smarthost: 'smtp\.example\.com' is not "
               rf"valid {F}; valid: host:port$"),
    key("setup", "monitoring: {alerting: {group_by: []}}", id="mon-key-alerting-group-by-empty",
        expect=rf"^monitoring\.alerting\.group_by: \[\] is not valid {F}"),
    key("setup", "monitoring: {alerting: {repeat_interval: often}}",
        id="mon-key-alerting-repeat-interval",
        expect=rf"^monitoring\.alerting\.repeat_interval: 'often' is not valid {F}; valid: a "
               r"duration"),
    key("setup", "monitoring: {alerting: {secret: Receivers}}", id="mon-key-alerting-secret",
        expect=rf"^monitoring\.alerting\.secret: 'Receivers' is not valid {F}; {DNS}"),
    case("monitoring.setup", code=1, id="mon-setup-receiver-env-unset",
         config="monitoring: {alerting: {warning: [chat], receivers: {chat: {type: slack, "
                "secret_env: FLOWLET_TEST_UNSET_SLACK_URL}}}}\n",
         expect=r"^Alertmanager receivers: \$FLOWLET_TEST_UNSET_SLACK_URL not set"),
    key("setup", "monitoring: {components: {loki: {values: missing.yaml}}}",
        id="mon-key-values-missing",
        expect=rf"^monitoring\.components\.loki\.values: 'missing\.yaml' is not valid {F}; valid: "
               r"a file in monitoring\.values_dir \(\S+/kubernetes/monitoring/missing\.yaml does "
               r"not exist\)$"),
    key("status", "monitoring: {components: {loki: {values: ../loki.yaml}}}",
        id="mon-key-values-path",
        expect=rf"^monitoring\.components\.loki\.values: '\.\./loki\.yaml' is not valid {F}; "
               r"valid: a \.yaml file name"),
    key("setup", "monitoring: {timeout: ten minutes}", id="mon-key-timeout",
        expect=rf"^monitoring\.timeout: 'ten minutes' is not valid {F}; valid: a duration"),
    key("uninstall", "monitoring: {timeout: 0s}", id="mon-key-timeout-zero",
        expect=rf"^monitoring\.timeout: '0s' is not valid {F}; valid: a duration"),
    key("setup", "monitoring: {repos: [grafana]}", id="mon-key-repos-list",
        expect=rf"^monitoring\.repos: a list \(\['grafana'\]\) is not valid {F}; valid: a mapping"),
    key("setup", "monitoring: {repos: {grafana: 'ftp://example.com/charts'}}",
        id="mon-key-repo-url",
        expect=rf"^monitoring\.repos\.grafana: 'ftp://example\.com/charts' is not valid {F}; "
               r"valid: a chart repository URL"),
    key("setup", "monitoring: {repos: {My_Repo: 'https://example.com'}}", id="mon-key-repo-name",
        expect=r"^monitoring\.repos: 'My_Repo' is not valid .*; valid: a key that is a "
               r"repository name"),
    key("setup", "monitoring: {components: {tempo: {enabled: true}}}",
        id="mon-key-unknown-component",
        expect=r"^monitoring\.components\.tempo: unknown key; valid keys: kube_prometheus_stack, "
               r"loki, alloy, jaeger$"),
    key("setup", "monitoring: {components: {loki: {version: '^18.0'}}}",
        id="mon-key-version-range",
        expect=rf"^monitoring\.components\.loki\.version: '\^18\.0' is not valid {F}; {VERSION}"),
    key("setup", "monitoring: {components: {loki: {version: 18}}}", id="mon-key-version-int",
        expect=rf"^monitoring\.components\.loki\.version: 18 is not valid {F}; {VERSION}"),
    key("setup", "monitoring: {components: {jaeger: {repo: nope}}}",
        id="mon-key-component-repo",
        expect=r"^monitoring\.components\.jaeger\.repo: 'nope' is not in monitoring\.repos; "
               r"valid: grafana, grafana-community, jaegertracing, prometheus-community$"),
    key("status", "monitoring: {components: {alloy: {enabled: maybe}}}", id="mon-key-enabled",
        expect=rf"^monitoring\.components\.alloy\.enabled: 'maybe' is not valid {F}; valid: "
               r"true or false$"),
    key("uninstall", "monitoring: {components: {loki: {release: Loki}}}", id="mon-key-release",
        expect=rf"^monitoring\.components\.loki\.release: 'Loki' is not valid {F}; valid: a "
               r"Helm release name"),
    key("setup", "monitoring: {components: {loki: {chart: 'loki chart'}}}", id="mon-key-chart",
        expect=rf"^monitoring\.components\.loki\.chart: 'loki chart' is not valid {F}; valid: "
               r"a chart name"),
    key("setup", f"monitoring: {{components: {{kube_prometheus_stack: {OFF}, loki: {OFF}, "
                 f"alloy: {OFF}, jaeger: {OFF}}}}}", id="mon-key-all-disabled",
        expect=r"^monitoring\.components: every component is disabled; nothing to install$"),
    key("grafana", f"monitoring: {{components: {{kube_prometheus_stack: {OFF}}}}}",
        id="mon-key-grafana-disabled",
        expect=r"^monitoring\.components\.kube_prometheus_stack\.enabled: false \(no grafana to "
               r"forward\)$"),
    key("jaeger", f"monitoring: {{components: {{jaeger: {OFF}}}}}", id="mon-key-jaeger-disabled",
        expect=r"^monitoring\.components\.jaeger\.enabled: false \(no jaeger to forward\)$"),
    key("setup", "monitoring: {grafana: {admin_secret: Grafana_Admin}}",
        id="mon-key-admin-secret",
        expect=rf"^monitoring\.grafana\.admin_secret: 'Grafana_Admin' is not valid {F}; {DNS}"),
    key("setup", "monitoring: {grafana: {admin_user: 'a b'}}", id="mon-key-admin-user",
        expect=rf"^monitoring\.grafana\.admin_user: 'a b' is not valid {F}; valid: a user name"),
    key("setup", "monitoring: {grafana: {password_env: 'my pass'}}", id="mon-key-password-env",
        expect=rf"^monitoring\.grafana\.password_env: 'my pass' is not valid {F}; valid: an "
               r"environment variable name"),
    key("setup", "monitoring: {grafana: {admin_usr: x}}", id="mon-key-grafana-typo",
        expect=r"^monitoring\.grafana\.admin_usr: unknown key; valid keys: admin_secret, "
               r"admin_user, password_env$"),
    key("grafana", "monitoring: {local_ports: {grafana: 70000}}", id="mon-key-local-port-range",
        expect=rf"^monitoring\.local_ports\.grafana: 70000 is not valid {F}; {PORT}"),
    key("jaeger", "monitoring: {local_ports: {jaeger: abc}}", id="mon-key-local-port-text",
        expect=rf"^monitoring\.local_ports\.jaeger: 'abc' is not valid {F}; {PORT}"),
    # INVOKE_MONITORING_* variables
    var("status", "INVOKE_MONITORING_NAMESPACE", "Bad_NS", id="mon-env-namespace",
        expect=r"^monitoring\.namespace: 'Bad_NS' is not valid \(set in "
               rf"INVOKE_MONITORING_NAMESPACE\); {DNS}"),
    var("setup", "INVOKE_MONITORING_TIMEOUT", "soon", id="mon-env-timeout",
        expect=r"^monitoring\.timeout: 'soon' is not valid \(set in INVOKE_MONITORING_TIMEOUT\); "
               r"valid: a duration"),
    var("grafana", "INVOKE_MONITORING_LOCAL_PORTS_GRAFANA", "abc", id="mon-env-local-port",
        expect=rf"^INVOKE_MONITORING_LOCAL_PORTS_GRAFANA: 'abc' is not valid; {PORT}"),
    var("setup", "INVOKE_MONITORING_COMPONENTS_LOKI_ENABLED", "maybe", id="mon-env-enabled",
        expect=r"^INVOKE_MONITORING_COMPONENTS_LOKI_ENABLED: 'maybe' is not valid; valid: one of "
               r"true"),
    var("setup", "INVOKE_MONITORING_COMPONENTS_KUBE_PROMETHEUS_STACK_VERSION", "latest",
        id="mon-env-version",
        expect=r"^monitoring\.components\.kube_prometheus_stack\.version: 'latest' is not valid "
               r"\(set in INVOKE_MONITORING_COMPONENTS_KUBE_PROMETHEUS_STACK_VERSION\); "
               rf"{VERSION}"),
    var("setup", "INVOKE_MONITORING_GRAFANA_PASSWORD_ENV", "1PASSWORD", id="mon-env-password-env",
        expect=r"^monitoring\.grafana\.password_env: '1PASSWORD' is not valid \(set in "
               r"INVOKE_MONITORING_GRAFANA_PASSWORD_ENV\); valid: an environment variable name"),
    var("setup", "INVOKE_MONITORING_VALUES_DIR", "invoke.yaml", id="mon-env-values-dir-file",
        expect=r"^monitoring\.values_dir: 'invoke\.yaml' is not valid \(set in "
               r"INVOKE_MONITORING_VALUES_DIR\); valid: a directory .*is not a directory"),
    # the project's own invoke.yaml, read by the real inv
    case("monitoring.status", project_yaml="monitoring: {namespace: Monitoring}\n", code=1,
         id="mon-project-yaml-namespace",
         expect=r"^monitoring\.namespace: 'Monitoring' is not valid \(set in \S*invoke\.yaml\); "
                rf"{DNS}"),
]
# fmt: on
