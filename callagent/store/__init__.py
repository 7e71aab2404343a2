"""The store: SQLAlchemy models, Alembic migrations and the services that own writes."""

# The dashboard's login tables (store/user_models.py) share models.Base: importing the package
# registers them, so Base.metadata is the whole schema wherever it is used (Alembic's env, the
# migrations test), whichever module was imported first.
from callagent.store import user_models as _user_models  # noqa: F401
