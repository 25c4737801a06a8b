"""Pure analyses of a translated mesh, for the CI-pipeline commands of ``meshctl``.

- :mod:`.explain`: which route, backends and access rule one request meets (``meshctl explain``)
- :mod:`.diff`: what a change does to every proxy's Envoy config (``meshctl diff``)
- :mod:`.findings`: mesh analysis with stable codes MW0001… (``meshctl check``)

No I/O: inputs are :class:`~mesh_operator.translate.MeshState` values and their translation.
"""
