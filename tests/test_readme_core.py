"""README's general commands, run as written (the topic sections have their own tests)."""

from __future__ import annotations

from conftest import need, readme, run_inv


@readme("inv --list")
def test_inv_list_shows_every_collection() -> None:
    result = run_inv("inv --list")
    assert result.returncode == 0 and result.stderr == ""
    for topic in ("setup", "dev.start", "deploy", "lint", "backup.postgres", "monitoring.setup"):
        assert topic in result.stdout


@readme("INVOKE_ENVIRONMENTS_STAGING_NAMESPACE=team-a inv deploy.render --env staging")
def test_an_invoke_variable_overrides_an_environment_key() -> None:
    need("helm")
    result = run_inv("INVOKE_ENVIRONMENTS_STAGING_NAMESPACE=team-a inv deploy.render --env staging")
    assert result.returncode == 0, result.stderr
    assert '  namespace: "team-a"\n' in result.stdout  # every object names the overridden one
    assert 'namespace: "flowlet-staging"' not in result.stdout
