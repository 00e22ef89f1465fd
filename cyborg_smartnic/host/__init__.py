"""Host preparation: the host config, the pure plan, in-use detection, the privileged
entry points and the executor that applies a plan safely."""
