#ifndef CORRAL_CWATCHDOG_SHIM_H
#define CORRAL_CWATCHDOG_SHIM_H

#include <linux/watchdog.h>
#include <sys/ioctl.h>

/// Sets the device's timeout in whole seconds; the device may round it and writes back
/// what it chose. Returns 0 or -1 with errno set.
static inline int corral_watchdog_set_timeout(int fd, int *seconds) {
    return ioctl(fd, WDIOC_SETTIMEOUT, seconds);
}

/// Restarts the device's countdown. Returns 0 or -1 with errno set.
static inline int corral_watchdog_keepalive(int fd) {
    int unused = 0;
    return ioctl(fd, WDIOC_KEEPALIVE, &unused);
}

/// The driver's capabilities (WDIOF_* flags in `options`). Returns 0 or -1 with errno set.
static inline int corral_watchdog_get_support(int fd, unsigned int *options) {
    struct watchdog_info info = {0};
    int result = ioctl(fd, WDIOC_GETSUPPORT, &info);
    if (result == 0) *options = info.options;
    return result;
}

/// WDIOF_SETTIMEOUT: the driver takes WDIOC_SETTIMEOUT.
static inline unsigned int corral_watchdog_can_set_timeout_flag(void) {
    return WDIOF_SETTIMEOUT;
}

#endif
