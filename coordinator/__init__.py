"""The coordinator: job CRUD, schedule firing, priority queues, leases, retries, history."""
