#ifndef CORRAL_CLIBVIRT_SHIM_H
#define CORRAL_CLIBVIRT_SHIM_H

#include <stddef.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* virConnectDomainEventRegisterAny takes every callback type through the generic one, cast
 * with the VIR_DOMAIN_EVENT_CALLBACK macro, which Swift cannot use: one typed entry per event. */

static inline int corral_register_lifecycle_events(virConnectPtr conn,
                                                   virConnectDomainEventCallback callback,
                                                   void *opaque, virFreeCallback free_opaque) {
    return virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                            VIR_DOMAIN_EVENT_CALLBACK(callback), opaque, free_opaque);
}

static inline int corral_register_job_completed_events(virConnectPtr conn,
                                                       virConnectDomainEventJobCompletedCallback callback,
                                                       void *opaque, virFreeCallback free_opaque) {
    return virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                                            VIR_DOMAIN_EVENT_CALLBACK(callback), opaque, free_opaque);
}

#endif
