"""cyborg-smartnic: SmartNIC virtual functions as OpenStack Cyborg accelerators."""

__version__ = "0.1.0"
