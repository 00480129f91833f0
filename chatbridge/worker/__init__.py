"""The task worker: django-tasks-db's tasks in a thread pool, woken by PostgreSQL NOTIFY."""
