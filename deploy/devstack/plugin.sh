#!/bin/bash
# deploy/devstack/plugin.sh - devstack plugin of cyborg-smartnic.
#
# Installs the project into the Python environment cyborg runs from, enables smartnic_driver
# in cyborg-agent's [agent] enabled_drivers, writes [smartnic] from the SMARTNIC_* variables
# of deploy/devstack/settings and restarts cyborg-agent so it loads the driver.
# Needs cyborg's own plugin enabled first (enable_plugin cyborg ... before this one).

function install_cyborg_smartnic {
    # setup_develop installs editable into devstack's global venv when there is one, which is
    # where cyborg-agent runs from; the driver is found through its entry point.
    setup_develop "$CYBORG_SMARTNIC_DIR"
}

# _smartnic_set SECTION KEY VALUE: iniset when VALUE is not empty.
function _smartnic_set {
    local section=$1 key=$2 value=$3
    if [[ -n "$value" ]]; then
        iniset "$SMARTNIC_CYBORG_CONF" "$section" "$key" "$value"
    fi
}

function _smartnic_enabled_drivers {
    local current
    if [[ "$SMARTNIC_ONLY_DRIVER" == "True" ]]; then
        echo "smartnic_driver"
        return
    fi
    current=$(iniget "$SMARTNIC_CYBORG_CONF" agent enabled_drivers)
    current=${current:-${CYBORG_ENABLED_DRIVERS:-}}
    if [[ ",${current// /}," == *",smartnic_driver,"* ]]; then
        echo "$current"
    else
        echo "${current:+${current},}smartnic_driver"
    fi
}

function configure_cyborg_smartnic {
    local pool prefix devices_var opt value_var
    iniset "$SMARTNIC_CYBORG_CONF" agent enabled_drivers "$(_smartnic_enabled_drivers)"
    _smartnic_set smartnic sysfs_root "$SMARTNIC_SYSFS_ROOT"
    _smartnic_set smartnic hostname "$SMARTNIC_HOSTNAME"
    _smartnic_set smartnic devices "$SMARTNIC_DEVICES"
    _smartnic_set smartnic physical_device_mappings "$SMARTNIC_PHYSICAL_DEVICE_MAPPINGS"
    _smartnic_set smartnic resource_class "$SMARTNIC_RESOURCE_CLASS"
    _smartnic_set smartnic extra_traits "$SMARTNIC_EXTRA_TRAITS"
    _smartnic_set smartnic extra_models "$SMARTNIC_EXTRA_MODELS"
    _smartnic_set smartnic use_devlink "$SMARTNIC_USE_DEVLINK"
    _smartnic_set smartnic pci_ids_path "$SMARTNIC_PCI_IDS_PATH"
    _smartnic_set smartnic state_file "$SMARTNIC_STATE_FILE"
    _smartnic_set smartnic audit_interval "$SMARTNIC_AUDIT_INTERVAL"
    _smartnic_set smartnic apply_lock_file "$SMARTNIC_APPLY_LOCK_FILE"
    _smartnic_set smartnic apply_state_dir "$SMARTNIC_APPLY_STATE_DIR"
    _smartnic_set smartnic privileged_call_timeout "$SMARTNIC_PRIVILEGED_CALL_TIMEOUT"
    _smartnic_set smartnic pools "$SMARTNIC_POOLS"
    # Pool NAME reads SMARTNIC_POOL_<NAME>_{DEVICES,RESOURCE_CLASS,TRAITS,PHYSNET}, NAME in
    # upper case with anything outside [A-Z0-9_] turned into '_'.
    for pool in ${SMARTNIC_POOLS//,/ }; do
        prefix="SMARTNIC_POOL_${pool^^}"
        prefix=${prefix//[^A-Z0-9_]/_}
        devices_var="${prefix}_DEVICES"
        if [[ -z "${!devices_var:-}" ]]; then
            die $LINENO "SMARTNIC_POOLS names '$pool' but $devices_var is empty"
        fi
        for opt in devices resource_class traits physnet; do
            value_var="${prefix}_${opt^^}"
            _smartnic_set "smartnic_pool:${pool}" "$opt" "${!value_var:-}"
        done
    done
}

function restart_cyborg_agent {
    if is_service_enabled cyborg-agent; then
        restart_service devstack@cyborg-agent
    fi
}

if is_service_enabled cyborg-smartnic; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing cyborg-smartnic"
        install_cyborg_smartnic
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring cyborg-smartnic"
        configure_cyborg_smartnic
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        # cyborg's plugin started the agent in this phase, before ours (plugins run in the
        # order they are enabled): restart it so it reads [smartnic] and loads the driver.
        echo_summary "Restarting cyborg-agent with smartnic_driver"
        restart_cyborg_agent
    fi
    if [[ "$1" == "clean" ]]; then
        pip_uninstall cyborg-smartnic
    fi
fi
