"""The catalog HTTP API: requests ⇒ commands and queries, no business rules.

Authorization (every route needs a valid bearer token, else 401):

- ``POST /brands``: admins only (403 ``role_required``).
- ``GET /brands``, ``GET /brands/{id}``, ``GET /products``, ``GET /products/{id}``: any
  authenticated user — the public catalogue (names, SKUs, list prices). Stock figures appear in
  a product only for its brand's staff and admins.
- ``POST /products``, ``PUT .../list-prices/{market}``, ``POST /skus/{id}/stock/receipts`` and
  ``/adjustments``: role ``brand`` or admin (403 ``role_required``), and only for a brand in the
  token's ``brands`` (403 ``not_brand_staff``, checked by the deciders).
- ``GET /brands/{id}/products`` (the brand's console: products with stock) and
  ``GET /skus/{id}/stock``: staff of that brand or admins (403 ``not_brand_staff``).
- ``GET /orders/{id}/reservations``: the order's buyer, staff of its brand, or admins
  (403 ``not_your_order``).

Writes accept an ``Idempotency-Key`` header: the same key again acts once and answers the same.
Ids a client does not choose are generated here; a product's SKU ids are ``<product id>-<n>``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from shopstream_contracts import Money
from shopstream_contracts.base import CurrencyCode, Id, MarketCode, Text, Title
from shopstream_contracts.catalog.v1 import OptionName, OptionValue
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.domain import Forbidden, NotFound
from shopstream_service.http import context_of, correlation_id

from .commands import (
    Actor,
    AdjustmentReason,
    AdjustStock,
    CreateProduct,
    NewPrice,
    NewSku,
    OnboardBrand,
    ReceiveStock,
    SetListPrice,
)
from .handlers import CatalogHandlers, command_id_for, derived_id
from .projections import (
    Brand,
    Product,
    Reservation,
    SkuStock,
    brand,
    brands,
    product_brand,
    products,
    reservations_of_order,
    sku_stock,
)

router = APIRouter(tags=["catalog"])

Admin = Annotated[Principal, Depends(require_roles("admin"))]
BrandStaff = Annotated[Principal, Depends(require_roles("brand"))]
PathId = Annotated[str, Path(pattern=r"^[!-~]{1,128}$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Client-chosen key of this request (a UUID is best): the same key again acts once.",
    ),
]
After = Annotated[str, Query(max_length=128, description="Page after this id (exclusive).")]
Limit = Annotated[int, Query(ge=1, le=200)]
ProductId = Annotated[
    str,
    StringConstraints(pattern=r"^[!-~]{1,100}$"),
    Field(description="At most 100 characters: its SKU ids are `<product_id>-<n>`."),
]


def _actor(principal: Principal) -> Actor:
    return Actor(principal.subject, principal.roles, principal.brands)


def _handlers(request: Request) -> CatalogHandlers:
    return CatalogHandlers(context_of(request))


def _new_id(principal: Principal, what: str, idempotency_key: str | None) -> str:
    """A new resource's id: stable per Idempotency-Key, so a retry names the same resource."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(derived_id(principal.subject, what, idempotency_key))


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- brands -----------------------------------------------------------------------------------


class OnboardBrandIn(_In):
    brand_id: Id | None = Field(
        default=None, description="Chosen by the admin (a slug); generated if absent."
    )
    name: Title
    country: MarketCode = Field(description="Country of the brand's seat (ISO-3166-1 alpha-2).")
    default_currency: CurrencyCode


@router.post("/brands", status_code=201, response_model=Brand)
async def onboard_brand(
    body: OnboardBrandIn, principal: Admin, request: Request, idempotency_key: IdempotencyKey = None
) -> Brand:
    brand_id = body.brand_id or _new_id(principal, "brand", idempotency_key)
    command = OnboardBrand(
        brand_id,
        body.name,
        body.country,
        body.default_currency,
        _actor(principal),
        context_of(request).clock.now(),
    )
    command_id = command_id_for(principal.subject, "POST /brands", idempotency_key)
    await _handlers(request).onboard_brand(command, command_id, correlation_id(request))
    return await _brand_or_404(request, brand_id)


@router.get("/brands", response_model=list[Brand])
async def list_brands(
    _: Authenticated, request: Request, after: After = "", limit: Limit = 50
) -> list[Brand]:
    return await brands(context_of(request).readmodel, after, limit)


@router.get("/brands/{brand_id}", response_model=Brand)
async def get_brand(brand_id: PathId, _: Authenticated, request: Request) -> Brand:
    return await _brand_or_404(request, brand_id)


async def _brand_or_404(request: Request, brand_id: str) -> Brand:
    found = await brand(context_of(request).readmodel, brand_id)
    if found is None:
        raise NotFound("brand_not_found", f"no brand {brand_id!r}")
    return found


@router.get("/brands/{brand_id}/products", response_model=list[Product])
async def brand_products(
    brand_id: PathId, principal: Authenticated, request: Request, after: After = "", limit: Limit = 50
) -> list[Product]:
    _ensure_manages(principal, brand_id)
    await _brand_or_404(request, brand_id)
    db = context_of(request).readmodel
    return await products(db, brand_id=brand_id, product_id=None, after=after, limit=limit, with_stock=True)


# --- products ---------------------------------------------------------------------------------


class PriceIn(_In):
    market: MarketCode
    price: Money


class SkuIn(_In):
    options: dict[OptionName, OptionValue] = Field(
        default_factory=dict, max_length=20, description='What distinguishes the variant, e.g. {"size": "M"}.'
    )
    barcode: Annotated[str, StringConstraints(pattern=r"^[0-9]{8,14}$")] | None = None
    list_prices: list[PriceIn] = Field(default_factory=list, max_length=50)


class CreateProductIn(_In):
    product_id: ProductId | None = Field(default=None, description="Generated if absent.")
    brand_id: Id
    title: Title
    description: Text | None = None
    skus: list[SkuIn] = Field(min_length=1, max_length=100)


@router.post("/products", status_code=201, response_model=Product)
async def create_product(
    body: CreateProductIn, principal: BrandStaff, request: Request, idempotency_key: IdempotencyKey = None
) -> Product:
    handlers = _handlers(request)
    product_id = body.product_id or _new_id(principal, "product", idempotency_key)
    skus = tuple(
        NewSku(
            f"{product_id}-{n}",
            sku.options,
            sku.barcode,
            tuple(NewPrice(price.market, price.price) for price in sku.list_prices),
        )
        for n, sku in enumerate(body.skus, start=1)
    )
    command = CreateProduct(
        product_id=product_id,
        brand_id=body.brand_id,
        brand_onboarded=await handlers.brand_onboarded(body.brand_id),
        title=body.title,
        description=body.description,
        skus=skus,
        actor=_actor(principal),
        at=context_of(request).clock.now(),
    )
    command_id = command_id_for(principal.subject, "POST /products", idempotency_key)
    await handlers.create_product(command, command_id, correlation_id(request))
    return await _product_or_404(request, product_id, with_stock=True)


@router.get("/products", response_model=list[Product])
async def list_products(
    _: Authenticated, request: Request, after: After = "", limit: Limit = 50
) -> list[Product]:
    db = context_of(request).readmodel
    return await products(db, brand_id=None, product_id=None, after=after, limit=limit, with_stock=False)


@router.get("/products/{product_id}", response_model=Product)
async def get_product(product_id: PathId, principal: Authenticated, request: Request) -> Product:
    owner = await product_brand(context_of(request).readmodel, product_id)
    manages = owner is not None and _actor(principal).manages(owner)
    return await _product_or_404(request, product_id, with_stock=manages)


async def _product_or_404(request: Request, product_id: str, *, with_stock: bool) -> Product:
    db = context_of(request).readmodel
    found = await products(db, brand_id=None, product_id=product_id, after="", limit=1, with_stock=with_stock)
    if not found:
        raise NotFound("product_not_found", f"no product {product_id!r}")
    return found[0]


class ListPriceIn(_In):
    price: Money


@router.put("/products/{product_id}/skus/{sku_id}/list-prices/{market}", response_model=Product)
async def set_list_price(
    product_id: PathId,
    sku_id: PathId,
    market: Annotated[str, Path(pattern=r"^[A-Z]{2}$", description="ISO-3166-1 alpha-2.")],
    body: ListPriceIn,
    principal: BrandStaff,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Product:
    command = SetListPrice(
        product_id, sku_id, market, body.price, _actor(principal), context_of(request).clock.now()
    )
    what = f"PUT /products/{product_id}/skus/{sku_id}/list-prices/{market}"
    command_id = command_id_for(principal.subject, what, idempotency_key)
    await _handlers(request).set_list_price(command, command_id, correlation_id(request))
    return await _product_or_404(request, product_id, with_stock=True)


# --- stock ------------------------------------------------------------------------------------


class ReceiptIn(_In):
    quantity: StrictInt = Field(ge=1, le=1_000_000)
    reference: Title | None = Field(default=None, description="Shipment or purchase-order reference.")


class AdjustmentIn(_In):
    delta: StrictInt = Field(
        ge=-1_000_000, le=1_000_000, description="Units added (+) or removed (-); not 0."
    )
    reason: AdjustmentReason
    note: Text | None = None


@router.post("/skus/{sku_id}/stock/receipts", status_code=201, response_model=SkuStock)
async def receive_stock(
    sku_id: PathId,
    body: ReceiptIn,
    principal: BrandStaff,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> SkuStock:
    command = ReceiveStock(
        sku_id, body.quantity, body.reference, _actor(principal), context_of(request).clock.now()
    )
    command_id = command_id_for(principal.subject, f"POST /skus/{sku_id}/stock/receipts", idempotency_key)
    await _handlers(request).change_stock(command, command_id, correlation_id(request))
    return await _stock_or_404(request, sku_id)


@router.post("/skus/{sku_id}/stock/adjustments", status_code=201, response_model=SkuStock)
async def adjust_stock(
    sku_id: PathId,
    body: AdjustmentIn,
    principal: BrandStaff,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> SkuStock:
    command = AdjustStock(
        sku_id, body.delta, body.reason, body.note, _actor(principal), context_of(request).clock.now()
    )
    command_id = command_id_for(principal.subject, f"POST /skus/{sku_id}/stock/adjustments", idempotency_key)
    await _handlers(request).change_stock(command, command_id, correlation_id(request))
    return await _stock_or_404(request, sku_id)


@router.get("/skus/{sku_id}/stock", response_model=SkuStock)
async def get_stock(sku_id: PathId, principal: Authenticated, request: Request) -> SkuStock:
    stock = await _stock_or_404(request, sku_id)
    _ensure_manages(principal, stock.brand_id)
    return stock


async def _stock_or_404(request: Request, sku_id: str) -> SkuStock:
    found = await sku_stock(context_of(request).readmodel, sku_id)
    if found is None:
        raise NotFound("sku_not_found", f"no SKU {sku_id!r}")
    return found


@router.get("/orders/{order_id}/reservations", response_model=list[Reservation])
async def order_reservations(
    order_id: PathId, principal: Authenticated, request: Request
) -> list[Reservation]:
    found = await reservations_of_order(context_of(request).readmodel, order_id)
    if not found:
        raise NotFound("order_not_found", f"the catalog has not seen order {order_id!r}")
    actor = _actor(principal)
    for reservation in found:
        owner = reservation.brand_id
        if not (
            reservation.buyer_id == principal.subject or actor.is_admin or (owner and actor.manages(owner))
        ):
            raise Forbidden("not_your_order", "only the order's buyer, its brand's staff or an admin")
    return found


def _ensure_manages(principal: Principal, brand_id: str) -> None:
    if not _actor(principal).manages(brand_id):
        raise Forbidden("not_brand_staff", f"only staff of brand {brand_id!r} or an admin")
