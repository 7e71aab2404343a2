"""The customer CSV import page through Litestar's test client, on both backends: each bad
row is shown with its number, column and reason; a bad row is never written; "import only if
every row is good" writes nothing when one row is bad; CSRF is enforced."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from helpers.dashboard_fixtures import Person, sign_in

Client = AsyncTestClient[Any]

CSV = (
    "phone_number,name,interest_level\n"
    "+14155550111,Ann Good,warm\n"
    "+14155550112,Bob Bad,lukewarm\n"
    "+14155550113,Cy Good,\n"
    "12,Dee Badnumber,cold\n"
)


async def _names(client: Client, who: Person) -> list[str]:
    listed = await client.get("/api/customers/", headers=who.headers)
    assert listed.status_code == 200, listed.text
    return sorted(item["name"] for item in listed.json()["items"])


async def _upload(client: Client, csrf: str, mode: str, text: str = CSV) -> Any:
    return await client.post(
        "/dashboard/customers/import",
        data={"csrf_token": csrf, "mode": mode},
        files={"file": ("customers.csv", text.encode(), "text/csv")},
    )


def _row_error(row: int, column: str) -> str:
    return f'<th scope="row">Row {row}</th><td>{column}</td>'


async def test_one_bad_row_and_all_or_nothing_writes_nothing(
    client: Client, person: Person
) -> None:
    csrf = await sign_in(client, person)
    form = await client.get("/dashboard/customers/import")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    response = await _upload(client, csrf, "all_or_nothing")
    assert response.status_code == 400
    assert "Nothing imported" in response.text
    assert _row_error(2, "interest_level") + "<td>must be one of" in response.text
    assert _row_error(4, "phone_number") in response.text
    assert "Row 1<" not in response.text
    assert await _names(client, person) == []


async def test_skipping_bad_rows_writes_the_good_ones_only(client: Client, person: Person) -> None:
    csrf = await sign_in(client, person)
    response = await _upload(client, csrf, "skip_bad")
    assert response.status_code == 200
    assert "2 new customers, 0 updated; 2 rows with errors were skipped" in response.text
    assert _row_error(2, "interest_level") in response.text
    assert _row_error(4, "phone_number") in response.text
    assert await _names(client, person) == ["Ann Good", "Cy Good"]
    # The customers page now lists them.
    assert "Ann Good" in (await client.get("/dashboard/customers")).text


async def test_a_good_file_is_imported_and_a_check_writes_nothing(
    client: Client, person: Person
) -> None:
    csrf = await sign_in(client, person)
    good = "phone_number,name\n+14155550121,Eve Check\n"
    checked = await _upload(client, csrf, "check", good)
    assert checked.status_code == 200
    assert "would create 1 customer and update 0" in checked.text
    assert await _names(client, person) == []
    pasted = await client.post(
        "/dashboard/customers/import",
        data={"csrf_token": csrf, "mode": "all_or_nothing", "csv_text": good},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert pasted.status_code == 200
    assert "1 new customer, 0 updated" in pasted.text
    assert await _names(client, person) == ["Eve Check"]


async def test_bad_files_are_refused_with_what_was_wrong(client: Client, person: Person) -> None:
    csrf = await sign_in(client, person)
    for text, message in [
        ("name\nNo Number\n", "the CSV header must have a phone_number column"),
        ("phone_number,shoe_size\n+14155550131,44\n", "unknown columns: shoe_size"),
    ]:
        response = await _upload(client, csrf, "skip_bad", text)
        assert response.status_code == 400
        assert message in response.text
    latin = await client.post(
        "/dashboard/customers/import",
        data={"csrf_token": csrf, "mode": "skip_bad"},
        files={"file": ("c.csv", "phone_number,name\n+14155550132,Zo\u00eb\n".encode("latin-1"))},
    )
    assert latin.status_code == 400
    assert "not UTF-8" in latin.text
    assert await _names(client, person) == []


async def test_the_import_needs_the_csrf_token(client: Client, person: Person) -> None:
    await sign_in(client, person)
    response = await _upload(client, "forged", "skip_bad")
    assert response.status_code == 403
    assert await _names(client, person) == []
