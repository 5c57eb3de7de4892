"""Root collection of Flowlet Ops: composes the topic collections found in ``tasks/``.

Invoke loads this file as the module ``tasks``; ``__path__`` lets it act as the package
``tasks/`` too, so ``from tasks import deploy`` resolves to ``tasks/deploy.py``.
"""

import os

from invoke import Collection

__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")]

from tasks import backup, deploy, dev, lint, monitoring, setup  # noqa: E402
from tasks.envdefaults import config_defaults  # noqa: E402

ns = Collection(setup.ns, dev.ns, deploy.ns, lint.ns, backup.ns, monitoring.ns)
ns.configure(config_defaults())
