"""Open vSwitch hardware offload: read OVS's state, plan and apply its settings, verify.

``state`` is the model and the recorded form, ``ovsdb`` the live reader (ovsdbapp),
``plan`` the pure diff against host.yaml's ``ovs:`` section, ``privileged`` the privsep entry
points that write OVSDB, ``datapath`` what the datapath, tc and ethtool say, ``doctor`` the
offload checks, ``cost`` what ovs-vswitchd costs in CPU and ``xdp`` the kernel's XDP readiness.
"""
