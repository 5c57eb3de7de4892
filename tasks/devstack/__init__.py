"""The local development stack shared by ``inv setup --env development`` and ``inv dev.*``.

``config`` turns invoke config into a :class:`~tasks.devstack.config.LocalStack` (paths, the
database target, the processes); ``envfile`` merges ``.env.local`` from its template;
``procs`` starts, probes and stops process groups; ``postgres`` plans the project-local
PostgreSQL cluster; ``flows`` holds the bodies of the ``dev`` tasks. Heavy or rarely needed
modules are imported inside functions.
"""
