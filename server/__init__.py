"""`lantern serve`: the engine as a service that faces attach to.

```
face ──WebSocket /v1/sessions/{id}/attach──▶ app (auth: Bearer token → Identity)
                                               │
                                               ▼
                                   Hub ── LiveSession (a Session, its turn task, a SharedApprover)
                                               │ events: store first (FanoutSink), then every attached face
                                               ▼
                                            Store (sessions, events, audit, server_users)
```
Faces import `server.client`; nothing below the faces imports this package.
"""
