"""Read-only discovery of a host's SmartNICs from sysfs into the immutable model."""
