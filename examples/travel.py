"""Travel booking with the first-class saga helper: flight, hotel and car are
booked as durable steps; each success registers its compensation; when the car
is refused (a TerminalError), the hotel and the flight are cancelled, in that
order, each as a durable step, and the error reaches the caller.

    stead serve examples.travel:application
    curl -X POST localhost:8080/Trips/book -H 'content-type: application/json' \
         -d '{"trip": "t1", "car": "convertible"}'      # 409: car refused, trip rolled back
"""

from __future__ import annotations

from pydantic import BaseModel

from pysdk import Context, RunOptions, Saga, Service, TerminalError, app


class Trip(BaseModel):
    trip: str
    car: str = "compact"


def book_flight(trip: str) -> str:
    return f"flight-{trip}"


def book_hotel(trip: str) -> str:
    return f"hotel-{trip}"


def book_car(trip: str, car: str) -> str:
    if car == "convertible":
        raise TerminalError(f"no {car} available for {trip}", 409)
    return f"car-{trip}"


def cancel(booking: str) -> str:
    return f"cancelled {booking}"


trips = Service("Trips")


@trips.handler()
async def book(ctx: Context, t: Trip) -> list[str]:
    async with Saga(ctx) as saga:
        flight = await ctx.run_typed("book_flight", book_flight, RunOptions(), t.trip)
        saga.add("cancel_flight", cancel, flight)
        hotel = await ctx.run_typed("book_hotel", book_hotel, RunOptions(), t.trip)
        saga.add("cancel_hotel", cancel, hotel)
        car = await ctx.run_typed("book_car", book_car, RunOptions(), t.trip, t.car)
        saga.add("cancel_car", cancel, car)
    return [flight, hotel, car]


application = app([trips])
