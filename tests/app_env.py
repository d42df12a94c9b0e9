"""Settings the AppTest suites clear so that a developer's environment (an API key, a
Redis, budgets, a forced mask...) never changes what they test."""

SCRUBBED = ("SERENICITY_API_KEY", "SERENICITY_API_URL", "FLUX_RATE_LIMIT", "FLUX_PER_PAGE",
            "FLUX_MAX_CONCURRENCY", "FLUX_MAX_RANGE_DAYS", "FLUX_DEMO_DENSE",
            "FLUX_ACCESS_FILE", "FLUX_ALLOW_ANONYMOUS", "FLUX_AUDIT_FILE",
            "FLUX_CONFIRM_REQUESTS", "FLUX_FORCE_MASK", "FLUX_GLOBAL_DAILY_BUDGET",
            "FLUX_MONTHLY_QUOTA", "FLUX_USER_DAILY_BUDGET", "FLUX_CARBON_G_PER_GB",
            "FLUX_REDIS_URL", "FLUX_MEMORY_MB", "FLUX_SECRETS_FILE", "FLUX_DEMO_DAY")
