"""The platform's domain: what users, functions, files and tasks are, who may do what to which,
how a task moves through its lifecycle, the queue and its leases, the platform's keys, and the
blob store. It knows nothing of HTTP (the API) or of wasm (the worker)."""
