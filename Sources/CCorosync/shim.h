#ifndef CORRAL_CCOROSYNC_SHIM_H
#define CORRAL_CCOROSYNC_SHIM_H

#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>
#include <corosync/cmap.h>
#include <string.h>
#include <sys/eventfd.h>

/// Fills a `struct cpg_name` from a C string. Swift sees `char value[128]` as a 128-element
/// tuple, which it cannot copy a string into without unsafe pointer juggling.
/// Returns 0, or -1 when the name does not fit (CPG names are at most 128 bytes, no NUL).
static inline int corral_cpg_name_set(struct cpg_name *out, const char *name) {
    size_t length = strlen(name);
    if (length > CPG_MAX_NAME_LENGTH) {
        return -1;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->value, name, length);
    out->length = (uint32_t)length;
    return 0;
}

/// A non-blocking, close-on-exec eventfd used to wake the dispatch thread's poll() on close.
/// Glibc's Swift module does not export <sys/eventfd.h>.
static inline int corral_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

#endif
