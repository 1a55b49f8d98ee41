"""One real sandbox cluster (etcd, kube-apiserver, controllers, node agent) for the whole session."""

from sandbox.testing import sandbox  # noqa: F401 - the session fixture, shared with other suites
