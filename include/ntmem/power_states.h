/*
 * ntmem: the system and device power state enumerations (wdm.h's
 * SYSTEM_POWER_STATE and DEVICE_POWER_STATE, values as Microsoft documents them).
 * Types only: drivers keep them in their device extensions. Included by wdm.h.
 */
#ifndef NTMEM_POWER_STATES_H
#define NTMEM_POWER_STATES_H

typedef enum _SYSTEM_POWER_STATE {
    PowerSystemUnspecified = 0,
    PowerSystemWorking = 1,
    PowerSystemSleeping1 = 2,
    PowerSystemSleeping2 = 3,
    PowerSystemSleeping3 = 4,
    PowerSystemHibernate = 5,
    PowerSystemShutdown = 6,
    PowerSystemMaximum = 7
} SYSTEM_POWER_STATE, *PSYSTEM_POWER_STATE;

typedef enum _DEVICE_POWER_STATE {
    PowerDeviceUnspecified = 0,
    PowerDeviceD0,
    PowerDeviceD1,
    PowerDeviceD2,
    PowerDeviceD3,
    PowerDeviceMaximum
} DEVICE_POWER_STATE, *PDEVICE_POWER_STATE;

#endif
