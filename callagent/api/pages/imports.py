"""The dashboard's customer CSV import (docs/dashboard.md, "Customer import"): a file (or
pasted text) goes through the same service as ``POST /api/customers/import/``
(:func:`callagent.store.services.customers.import_customers`), with the same columns, limits
and messages; each bad row is shown with its number, its column and what was wrong.

Three ways to run it: check only (the service's dry run: nothing is written); import only if
every row is good (the service's ``all_or_nothing``: the rows are checked and written in one
transaction, rolled back whole if any row is bad, so a file with a bad row writes nothing even
when a customer changes meanwhile); or import the good rows and skip the bad ones, as the REST
route does.
Either way a bad row is never written, and the good rows are written in one transaction.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile

from callagent.api.pages.auth import signed_in
from callagent.api.pages.render import render
from callagent.api.routes.crm import IMPORT_MAX_BODY
from callagent.api.state import ApiState
from callagent.store.errors import ValidationFailed
from callagent.store.schemas import ImportResult
from callagent.store.services import customers
from callagent.store.services.customers import IMPORT_COLUMNS

MODES: Final = {
    "all_or_nothing": "Import only if every row is good",
    "skip_bad": "Import the good rows, skip the bad ones",
    "check": "Only check the file: write nothing",
}


class FormError(Exception):
    """Bad input on a form: said next to the form, nothing written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def csv_text(form: Any, file_field: str = "file", text_field: str = "csv_text") -> str:
    """The CSV a form carries: the uploaded file, else the pasted text. Not UTF-8, or neither
    given, is a :class:`FormError`."""
    upload = form.get(file_field)
    data = b""
    if isinstance(upload, UploadFile):
        await upload.seek(0)  # a form may be read twice: checked first, then imported
        data = await upload.read()
    if data:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise FormError(
                "the file is not UTF-8 text: save it as “CSV UTF-8” and try again"
            ) from None
    pasted = form.get(text_field)
    if isinstance(pasted, str) and pasted.strip():
        return pasted
    raise FormError("choose a CSV file (or paste its text)")


def import_handlers(api: ApiState) -> list[Any]:
    """The import page and its form, for the dashboard's guarded router."""

    def page(
        request: Request[Any, Any, Any],
        *,
        mode: str = "all_or_nothing",
        result: ImportResult | None = None,
        written: bool = False,
        error: str = "",
        status_code: int = 200,
    ) -> Response[str]:
        who = signed_in(request)
        return render(
            "customers_import.html",
            status_code=status_code,
            who=who,
            csrf=who.csrf_token,
            path=request.url.path,
            columns=IMPORT_COLUMNS,
            modes=MODES,
            mode=mode,
            result=result,
            written=written,
            error=error,
        )

    @get("/customers/import", include_in_schema=False)
    async def import_form(request: Request[Any, Any, Any]) -> Response[str]:
        return page(request)

    @post(
        "/customers/import",
        include_in_schema=False,
        request_max_body_size=IMPORT_MAX_BODY + 64 * 1024,  # the file and the form around it
    )
    async def import_csv(request: Request[Any, Any, Any]) -> Response[str]:
        who = signed_in(request)
        form = await request.form()
        mode = str(form.get("mode") or "all_or_nothing")
        if mode not in MODES:
            mode = "all_or_nothing"
        try:
            text = await csv_text(form)
            result = await customers.import_customers(
                api.db,
                who.client_id,
                text,
                dry_run=mode == "check",
                all_or_nothing=mode == "all_or_nothing",
            )
        except FormError as error:
            return page(request, mode=mode, error=error.message, status_code=400)
        except ValidationFailed as error:
            return page(request, mode=mode, error=error.reason, status_code=400)
        return page(
            request,
            mode=mode,
            result=result,
            written=not result.dry_run,
            status_code=400 if result.errors and mode == "all_or_nothing" else 200,
        )

    return [import_form, import_csv]
