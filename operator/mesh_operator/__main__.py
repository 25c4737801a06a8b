"""``python -m mesh_operator``: the Kubernetes operator (same as ``meshwork-controller``)."""

from mesh_operator.kube.cli import main

raise SystemExit(main())
