"""A BYOK app's backend on Relay in FastAPI: a registration token for the widget, and chat for
the signed-in user, streamed. Sign-in is faked with an `X-Demo-User` header; use your own."""
import os

import openai
from fastapi import Depends, FastAPI, Header
from fastapi.responses import JSONResponse, StreamingResponse
from relay_sdk import AsyncRelay

relay = AsyncRelay()  # RELAY_API_KEY and RELAY_BASE_URL from the environment
app = FastAPI()


@app.exception_handler(openai.APIStatusError)  # Relay's error, e.g. 404 enduser_key_missing: no key yet
async def relay_error(_request, e: openai.APIStatusError) -> JSONResponse:
    return JSONResponse({"error": e.message, "code": e.code}, status_code=e.status_code)


def current_user(x_demo_user: str = Header()) -> str:
    return x_demo_user  # your real session lookup goes here


@app.post("/api/registration-token")
async def registration_token(user: str = Depends(current_user)) -> dict:
    token = await relay.create_registration_token(user=user)
    return {"registrationToken": token["registrationToken"], "appId": os.environ.get("RELAY_APP_ID")}


@app.post("/api/chat")
async def chat(body: dict, user: str = Depends(current_user)) -> StreamingResponse:
    messages = [{"role": "user", "content": str(body.get("message", ""))}]
    stream = await relay.async_openai(user=user).chat.completions.create(
        model=os.environ.get("MODEL", "gpt-4o-mini"), messages=messages, stream=True
    )
    return StreamingResponse((c.choices[0].delta.content or "" async for c in stream if c.choices), media_type="text/plain")
