"""The FastAPI application: `create_app(settings)` wires the library in, once per process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel
from securecustomer.audit import actor, default_trail
from securecustomer.exceptions import AccessDenied, LegalHoldError
from securecustomer.keys import Keyring
from securecustomer.policy import PolicyEngine, Subject
from securecustomer.privacy import LegalHolds
from securecustomer.sqlalchemy import default_keyring
from sqlalchemy.orm import Session, sessionmaker

from customer_service import service
from customer_service.settings import Settings
from customer_service.startup import (
    create_engine,
    load_policy,
    open_holds,
    open_keyring,
    open_trail,
)


@dataclass(frozen=True)
class Services:
    """What the endpoints need, built at start-up."""

    engine: sa.Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    policy: PolicyEngine
    holds: LegalHolds


# -- per-request dependencies ------------------------------------------------------------


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# --8<-- [start:current_user]
async def current_user(
    x_user: Annotated[str | None, Header()] = None,
    x_roles: Annotated[str, Header()] = "",
    x_request_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[Subject]:
    """The user making the request, from the X-User and X-Roles headers.

    A STAND-IN FOR REAL AUTHENTICATION: anyone can send these headers. In your application,
    build the `Subject` from a verified session or token (roles from your identity provider).
    The audit events of everything the request does name this user, through `actor()`.
    """
    if not x_user:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-User header required")
    user = Subject(x_user, roles=[role.strip() for role in x_roles.split(",") if role.strip()])
    with actor(user, request_id=x_request_id):
        yield user


# --8<-- [end:current_user]


User = Annotated[Subject, Depends(current_user)]
Svc = Annotated[Services, Depends(get_services)]


def unicode_text(value: str) -> str:
    """Refuse a lone surrogate: JSON can carry one ("\\ud800"), but it is not text, and the
    encrypted columns refuse to store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(unicode_text)]


class NewCustomer(BaseModel):
    name: Text
    email: Text
    phone: Text | None = None


class NewNote(BaseModel):
    text: Text


# -- the application ---------------------------------------------------------------------


# --8<-- [start:create_app]
def create_app(settings: Settings) -> FastAPI:
    """The application. Run ``python -m customer_service init`` once before the first start."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.pool_size)
        key_engine = create_engine(settings.key_store_url)
        keyring = open_keyring(settings, key_engine)
        default_keyring.bind(keyring)  # the encrypted columns use it
        default_trail.bind(open_trail(settings, engine))  # @audited writes to it
        app.state.services = Services(
            engine=engine,
            sessions=sessionmaker(engine, expire_on_commit=False),
            keyring=keyring,
            policy=load_policy(settings),
            holds=open_holds(settings, engine),
        )
        try:
            yield
        finally:
            default_trail.bind(None)
            default_keyring.unbind()
            engine.dispose()
            key_engine.dispose()

    # A body larger than max_body_bytes, declared or streamed, gets 413 before it is read.
    app = FastAPI(
        title="customer_service", lifespan=lifespan, max_body_size=settings.max_body_bytes
    )

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, exc: AccessDenied) -> JSONResponse:
        # exc.decision.reason names the policy's rules: log it, never send it.
        return JSONResponse({"detail": "forbidden"}, status_code=status.HTTP_403_FORBIDDEN)

    @app.exception_handler(LegalHoldError)
    async def held(request: Request, exc: LegalHoldError) -> JSONResponse:
        # A hold (or a holds table that does not verify) forbids the erasure: nothing changed.
        return JSONResponse(
            {"detail": "a legal hold forbids erasing this customer"},
            status_code=status.HTTP_409_CONFLICT,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer repeats each bad value ("input"): customer data, which a
        # lone surrogate even makes unencodable. Say where and what, never the value.
        errors = [{key: error[key] for key in ("loc", "msg", "type")} for error in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(service.CustomerNotFound)
    async def not_found(request: Request, exc: service.CustomerNotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such customer"}, status_code=404)

    # --8<-- [end:create_app]

    # --8<-- [start:endpoints]
    # Each endpoint opens its session itself, in the worker thread it runs in, and closes it
    # (giving its connection back to the pool) before that thread is free again. A `yield`
    # dependency would close it in another thread of the same pool afterwards: with every
    # thread waiting for a connection, none would be left to give one back.
    @app.post("/customers", status_code=status.HTTP_201_CREATED)
    def create_customer(body: NewCustomer, user: User, svc: Svc) -> dict[str, str]:
        with svc.sessions() as db:
            customer_id = service.create_customer(
                db, svc.policy, user, name=body.name, email=body.email, phone=body.phone
            )
            return {"id": str(customer_id)}

    @app.get("/customers/{customer_id}")
    def read_customer(customer_id: uuid.UUID, user: User, svc: Svc) -> dict[str, Any]:
        with svc.sessions() as db:
            return service.read_customer(db, svc.policy, user, customer_id)

    @app.post("/customers/{customer_id}/notes", status_code=status.HTTP_201_CREATED)
    def add_note(customer_id: uuid.UUID, body: NewNote, user: User, svc: Svc) -> None:
        with svc.sessions() as db:
            service.add_note(db, svc.policy, user, customer_id, body.text)

    @app.get("/customers")
    def search_customers(email: str, user: User, svc: Svc) -> list[dict[str, Any]]:
        with svc.sessions() as db:
            return service.find_by_email(db, svc.policy, user, email)

    @app.get("/subjects/{customer_id}/export")
    def export_subject(customer_id: uuid.UUID, user: User, svc: Svc) -> dict[str, Any]:
        with svc.sessions() as db:
            return service.export_customer(db, svc.policy, user, customer_id)

    @app.delete("/subjects/{customer_id}")
    def erase_subject(customer_id: uuid.UUID, user: User, svc: Svc) -> dict[str, Any]:
        with svc.sessions() as db:
            return service.erase_customer(db, svc.policy, user, customer_id, svc.holds)

    @app.get("/audit/verify")
    def verify_audit(user: User, svc: Svc) -> dict[str, Any]:
        return service.verify_audit(svc.policy, user)

    @app.get("/inventory")
    def inventory(user: User, svc: Svc) -> dict[str, Any]:
        return service.data_inventory(svc.engine, svc.keyring, svc.policy, user)

    # --8<-- [end:endpoints]

    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory customer_service.app:app_from_env``."""
    return create_app(Settings.from_env())
