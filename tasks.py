"""Root collection of Flowlet Ops: composes the topic collections found in ``tasks/`` and
registers every topic's defaults here, on the root, so that every task sees every key (``inv
setup --env production`` runs deploy code) and ``INVOKE_*`` / ``-f`` can override each one.

Invoke loads this file as the module ``tasks``; ``__path__`` lets it act as the package
``tasks/`` too, so ``from tasks import deploy`` resolves to ``tasks/deploy/``.
"""

import os

from invoke import Collection

__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")]

# Before Invoke reads invoke.yaml, -f and INVOKE_*: a bad one becomes one line, exit 1.
from tasks.core import configload  # noqa: E402

configload.install()

from tasks import backup, deploy, dev, lint, monitoring, setup  # noqa: E402
from tasks.backup import settings as backup_settings  # noqa: E402
from tasks.core import environments  # noqa: E402
from tasks.core.runner import Local  # noqa: E402
from tasks.core.settings import register  # noqa: E402
from tasks.deploy import settings as deploy_settings  # noqa: E402
from tasks.dev import settings as dev_settings  # noqa: E402
from tasks.lint import settings as lint_settings  # noqa: E402
from tasks.monitoring import settings as monitoring_settings  # noqa: E402
from tasks.setup import settings as setup_settings  # noqa: E402

ns = Collection(setup.ns, dev.ns, deploy.ns, lint.ns, backup.ns, monitoring.ns)
ns.configure(
    {
        "runners": {"local": Local},
        **register(
            {
                "environments": environments.SCHEMA,  # type: ignore[dict-item]
                "setup": setup_settings.SCHEMA,
                "dev": dev_settings.SCHEMA,
                "deploy": deploy_settings.SCHEMA,
                "lint": lint_settings.SCHEMA,
                "backup": backup_settings.SCHEMA,
                "ssh": backup_settings.SSH_SCHEMA,
                "monitoring": monitoring_settings.SCHEMA,
            }
        ),
    }
)
