"""Local stack for development and tests: Postgres, S3 (moto server), the stand-in model."""
