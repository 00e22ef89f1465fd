"""YAML device profiles: load with positions, validate, compile, apply to a cloud, check a host.

Pipeline: ``loader`` (files -> positioned documents) -> ``validate`` (schema + semantic rules,
every error with FILE:LINE:COL) -> ``spec`` (typed, frozen profile specs) -> ``compiler``
(Cyborg device profile body, Nova flavor extra specs, Neutron port arguments, host
requirements) -> ``render`` / ``apply`` (openstacksdk) / ``check`` (a discovered host).
"""
