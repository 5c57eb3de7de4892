"""Hostile values in what reaches another program's argv or a connection string (issue 23):
a database target's ``name``/``user``/``host``/``backup_host`` (mariadb-dump, pg_dump, libpq),
and the deploy values that reach helm/kubectl (kube context, namespace, release, image tag,
digests, values file). Each is refused with one line before anything runs: a leading '-'
(an option), '=' (a libpq conninfo keyword), whitespace, newlines, control characters, and the
shell's '$', backticks and quotes where the value is a name."""

from __future__ import annotations

from tests.badinput import case

DB = r"^environments\.development\.databases\.postgres\.{key}: {value} is not valid \(set in "
DB_VALID = r"; valid: a {what}: no leading '-', no '=', whitespace or control characters$"


def db(key: str, value: str, shown: str, ident: str, what: str = "database name") -> object:
    config = "environments: {development: {databases: {postgres: {%s: %s}}}}\n" % (key, value)
    return case(
        "backup.postgres",
        "--dry",
        config=config,
        expect=DB.format(key=key, value=shown) + r".*" + DB_VALID.format(what=what),
        id=ident,
    )


CONTEXT_VALID = r"valid: a kube context name: letters, digits"
MYSQL_PROJECT = (
    "environments:\n  development:\n    namespace: flowlet-dev\n    databases:\n"
    "      mysql: {engine: mysql, host: 127.0.0.1, port: 3306, name: shop, user: backup}\n"
)
TAG_VALID = r"valid: an image tag"

CASES = [
    # database name: it was mariadb-dump's last argument and pg_dump's --dbname (a conninfo)
    db(
        "name",
        "'--result-file=/tmp/flowlet-pwned'",
        r"'--result-file=/tmp/flowlet-pwned'",
        "db-name-option",
    ),
    db("name", "'-x'", r"'-x'", "db-name-dash"),
    db("name", "'host=evil sslmode=disable'", r"'host=evil sslmode=disable'", "db-name-conninfo"),
    db("name", "'a=b'", r"'a=b'", "db-name-equals"),
    db("name", '"flowlet\\n"', r"'flowlet\\n'", "db-name-trailing-newline"),
    db("name", '"a\\nb"', r"'a\\nb'", "db-name-newline"),
    db("name", "'my db'", r"'my db'", "db-name-space"),
    db("name", '"a\\tb"', r"'a\\tb'", "db-name-tab"),
    db("name", '"a\\x01b"', r"'a\\x01b'", "db-name-control"),
    case(
        "backup.postgres",
        "--dry",
        config="environments: {development: {databases: {postgres: {name: %s}}}}\n" % ("d" * 65),
        expect=r"^environments\.development\.databases\.postgres\.name: 'd{65}' is not valid .*"
        r"\(at most 64 characters\)$",
        id="db-name-long",
    ),
    # database user: --user / --username, and libpq's conninfo
    db("user", "'-oProxyCommand=id'", r"'-oProxyCommand=id'", "db-user-option", "user name"),
    db("user", "'user=postgres'", r"'user=postgres'", "db-user-equals", "user name"),
    db("user", "'bob smith'", r"'bob smith'", "db-user-space", "user name"),
    db("user", '"bob\\n"', r"'bob\\n'", "db-user-newline", "user name"),
    # host and the ssh host the dump runs on
    case(
        "backup.postgres",
        "--dry",
        config="environments: {development: {databases: {postgres: {host: '-oProxy'}}}}\n",
        expect=r"^environments\.development\.databases\.postgres\.host: '-oProxy' is not valid "
        r".*; valid: a host name or address \(not starting with '-'\)$",
        id="db-host-dash",
    ),
    case(
        "backup.postgres",
        "--dry",
        config='environments: {development: {databases: {postgres: {host: "db\\n"}}}}\n',
        expect=r"^environments\.development\.databases\.postgres\.host: 'db\\n' is not valid",
        id="db-host-newline",
    ),
    case(
        "backup.postgres",
        "--dry",
        config="environments: {development: {databases: {postgres: "
        "{backup_host: '-oProxyCommand=id'}}}}\n",
        expect=r"^environments\.development\.databases\.postgres\.backup_host: "
        r"'-oProxyCommand=id' is not valid .*; valid: an ssh_config host",
        id="db-backup-host-dash",
    ),
    # the same through an INVOKE_* variable (a scheduled run's environment), by the real inv
    case(
        "backup.mysql",
        env={"INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_MYSQL_NAME": "--result-file=/tmp/x"},
        project_yaml=MYSQL_PROJECT,
        expect=r"^environments\.development\.databases\.mysql\.name: '--result-file=/tmp/x' "
        r"is not valid \(set in INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_MYSQL_NAME\); "
        r"valid: a database name",
        id="db-name-env-option",
    ),
    case(
        "backup.mysql",
        env={"INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_MYSQL_USER": "x host=evil"},
        project_yaml=MYSQL_PROJECT,
        expect=r"^environments\.development\.databases\.mysql\.user: 'x host=evil' "
        r"is not valid \(set in INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_MYSQL_USER\)",
        id="db-user-env-conninfo",
    ),
    # deploy: --context reaches every helm/kubectl argv
    *[
        case(
            task,
            "--env",
            "staging",
            "--context",
            value,
            config="{}\n",
            expect=rf"^--context: {shown} is not valid; {CONTEXT_VALID}",
            id=f"{task}-context-{ident}",
        )
        for task in ("deploy", "deploy.status")
        for value, shown, ident in (
            ("$(id)", r"'\$\(id\)'", "subst"),
            ("`id`", r"'`id`'", "backtick"),
            ("a'b", r'"a\'b"', "quote"),
            ("ctx\n", r"'ctx\\n'", "newline"),
            ("a=b", r"'a=b'", "equals"),
            ("--all", r"'--all'", "option"),
        )
    ],
    case(
        "deploy.history",
        "--env",
        "staging",
        config="environments: {staging: {kube_context: '$(touch /tmp/x)'}}\n",
        expect=r"^environments\.staging\.kube_context: '\$\(touch /tmp/x\)' is not valid .*; "
        + CONTEXT_VALID,
        id="context-key-subst",
    ),
    case(
        "deploy.history",
        "--env",
        "staging",
        env={"INVOKE_ENVIRONMENTS_STAGING_KUBE_CONTEXT": "flowlet-staging\n"},
        expect=r"^environments\.staging\.kube_context: 'flowlet-staging\\n' is not valid \(set in "
        r"INVOKE_ENVIRONMENTS_STAGING_KUBE_CONTEXT\)",
        id="context-env-newline",
    ),
    # namespace and release: helm/kubectl argv and YAML
    case(
        "deploy.status",
        "--env",
        "staging",
        config="environments: {staging: {namespace: '-n'}}\n",
        expect=r"^environments\.staging\.namespace: '-n' is not valid .*; valid: a DNS-1123 label",
        id="status-namespace-option",
    ),
    case(
        "deploy.status",
        "--env",
        "staging",
        "--namespace",
        "ns\n",
        config="{}\n",
        expect=r"^--namespace: 'ns\\n' is not valid; valid: a DNS-1123 label",
        id="status-namespace-newline",
    ),
    case(
        "deploy.render",
        "--env",
        "staging",
        config='environments: {staging: {release: "flowlet\\n"}}\n',
        expect=r"^environments\.staging\.release: 'flowlet\\n' is not valid .*; valid: a Helm "
        "release name",
        id="release-newline",
    ),
    case(
        "deploy.render",
        "--env",
        "staging",
        config="environments: {staging: {release: '--dry-run'}}\n",
        expect=r"^environments\.staging\.release: '--dry-run' is not valid",
        id="release-option",
    ),
    # image tag and digests: helm --set-string values (',' and '=' are helm --set syntax)
    *[
        case(
            "deploy.render",
            "--env",
            "staging",
            "--image-tag",
            value,
            config="{}\n",
            expect=rf"^--image-tag: {shown} is not valid; {TAG_VALID}",
            id=f"render-image-tag-{ident}",
        )
        for value, shown, ident in (
            ("$(id)", r"'\$\(id\)'", "subst"),
            ("`id`", r"'`id`'", "backtick"),
            ('a"b', r"'a\"b'", "quote"),
            ("abc\n", r"'abc\\n'", "newline"),
            ("a,b=c", r"'a,b=c'", "set-syntax"),
        )
    ],
    case(
        "deploy.render",
        "--env",
        "staging",
        env={"INVOKE_DEPLOY_IMAGE_TAG": "v1,image.repository=evil"},
        expect=r"^deploy\.image_tag: 'v1,image\.repository=evil' is not valid \(set in "
        r"INVOKE_DEPLOY_IMAGE_TAG\)",
        id="image-tag-env-set-syntax",
    ),
    case(
        "deploy.render",
        "--env",
        "staging",
        "--image-digest",
        "backend=sha256:" + "a" * 64 + ",frontend.image.repository=evil",
        config="{}\n",
        expect=r"^--image-digest: 'frontend\.image\.repository=evil' is not valid",
        id="render-image-digest-set-syntax",
    ),
    # the values file: helm reads --values as a comma-separated list
    case(
        "deploy.render",
        "--env",
        "staging",
        config="environments: {staging: {values_file: 'kubernetes/a,b.yaml'}}\n",
        expect=r"^environments\.staging\.values_file: '\S+/kubernetes/a,b\.yaml' is not valid .*; "
        r"valid: a file path without ','",
        id="values-file-comma",
    ),
]
