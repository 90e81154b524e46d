"""Webhooks: what changed, pushed to other systems, signed, at least once, in order per identity.

:mod:`~identity.webhooks.service` manages webhooks and their deliveries,
:mod:`~identity.webhooks.worker` delivers them from the outbox
(:mod:`identity.store.outbox`), :mod:`~identity.webhooks.signing` signs and verifies,
:mod:`~identity.webhooks.payload` writes the bodies, :mod:`~identity.webhooks.addresses`
keeps deliveries away from addresses they must not reach.
"""
