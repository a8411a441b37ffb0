"""Schedule expressions: cron, macros, `@every` intervals and one-time instants."""
