"""The conformance suite's fixtures on top of our own server wiring.

The suite (``@modelcontextprotocol/conformance``) calls tools, resources and prompts with
fixed names (``test_simple_text``, ``test://static-text`` ...). This module builds the real
application with ``create_app`` (same factory, same middleware, same MCP server, auth mode
``none`` because the suite sends no credentials) and registers those names on its MCP
server, next to our own ``search``/``fetch``/``list_sources``. Run it as a module::

    KB_DATABASE__URL=... python -m tests.conformance.fixture_server --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import warnings
from typing import Annotated, Any

import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import Field

from server.app import create_app
from server.mcp.http import McpMount
from server.settings import load_settings

IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
    "BQIAX8jx0gAAAABJRU5ErkJggg=="
)
AUDIO = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

log = logging.getLogger("conformance-fixtures")

JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def _text(text: str, *, error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=error)


def _origin(ctx: Context[Any, Any]) -> Any:
    """The id of the call in progress, so a server-to-client request rides on its stream.

    Without it the SDK routes the request to the standalone GET stream, which a 2025-11-25
    client opens in the background after initializing; if that GET has not arrived yet
    (a loaded machine), the request is dropped (there is no event store) and the tool call
    waits until the client's 30 s timeout: the elicitation-sep1330-enums flake. The POST
    stream of the call itself exists before the tool runs, so this cannot be lost.
    """
    return ctx.request_context.request_id


def _elicit(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {"type": "object", "properties": properties, "required": required},
        },
    }


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
            "maxTokens": max_tokens,
        },
    }


ROOTS = {"method": "roots/list", "params": {}}


def _input_required(requests: dict[str, Any], state: str | None = None) -> InputRequiredResult:
    body: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        body["requestState"] = state
    return InputRequiredResult.model_validate(body)


def _responses(ctx: Context[Any, Any]) -> dict[str, Any]:
    raw = ctx.input_responses or {}
    return {k: v.model_dump(mode="json", by_alias=True) for k, v in raw.items()}


def register_tools(mcp: MCPServer[Any]) -> None:  # noqa: C901 (a catalogue, not logic)
    def tool(fn: Any) -> Any:
        mcp.add_tool(fn, description=fn.__doc__, structured_output=False)
        return fn

    @tool
    def test_simple_text() -> str:
        """Tests simple text content response."""
        return "This is a simple text response for testing."

    @tool
    def test_image_content() -> list[ImageContent]:
        """Tests image content response."""
        return [ImageContent(type="image", data=IMAGE, mime_type="image/png")]

    @tool
    def test_audio_content() -> list[AudioContent]:
        """Tests audio content response."""
        return [AudioContent(type="audio", data=AUDIO, mime_type="audio/wav")]

    @tool
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Tests embedded resource content response."""
        return [
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://embedded-resource",
                    mime_type="text/plain",
                    text="This is an embedded resource content.",
                ),
            )
        ]

    @tool
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Tests a response with text, image and resource content."""
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=IMAGE, mime_type="image/png"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://mixed-content-resource",
                    mime_type="application/json",
                    text='{"test":"data","value":123}',
                ),
            ),
        ]

    @tool
    async def test_tool_with_logging(ctx: Context[Any, Any]) -> str:
        """Tests a tool that emits log messages during execution."""
        for i, line in enumerate(
            ("Tool execution started", "Tool processing data", "Tool execution completed")
        ):
            if i:
                await asyncio.sleep(0.05)
            await ctx.log("info", line)
        return "Tool with logging executed successfully"

    @tool
    async def test_logging_tool(ctx: Context[Any, Any]) -> str:
        """Emits log messages (only delivered when the request opts in)."""
        await ctx.log("info", "logging tool message")
        return "logged"

    @tool
    async def test_tool_with_progress(ctx: Context[Any, Any]) -> str:
        """Tests a tool that reports progress notifications."""
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
            if step < 100:
                await asyncio.sleep(0.05)
        meta = ctx.request_context.meta
        token = (meta.get("progress_token") or meta.get("progressToken")) if meta else None
        return str(token if token is not None else 0)

    @tool
    def test_error_handling() -> CallToolResult:
        """Tests error response handling."""
        return _text("This tool intentionally returns an error for testing", error=True)

    @tool
    async def test_sampling(prompt: str, ctx: Context[Any, Any]) -> str:
        """Tests server-initiated sampling (LLM completion request)."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=_origin(ctx),
        )
        text = result.content.text if isinstance(result.content, TextContent) else "No response"
        return f"LLM response: {text}"

    @tool
    async def test_elicitation(message: str, ctx: Context[Any, Any]) -> str:
        """Tests server-initiated elicitation (user input request)."""
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await ctx.session.elicit_form(message, schema, _origin(ctx))
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @tool
    async def test_elicitation_sep1034_defaults(ctx: Context[Any, Any]) -> str:
        """Tests elicitation with default values for all primitive types (SEP-1034)."""
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {
                    "type": "boolean",
                    "description": "Verification status",
                    "default": True,
                },
            },
        }
        result = await ctx.session.elicit_form(
            "Please provide user information", schema, _origin(ctx)
        )
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    @tool
    async def test_elicitation_sep1330_enums(ctx: Context[Any, Any]) -> str:
        """Tests elicitation with the enum schema variants of SEP-1330."""
        titled = [{"const": f"value{i}", "title": t} for i, t in enumerate(("First", "Second"))]
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "oneOf": titled},
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {"type": "array", "items": {"anyOf": titled}},
            },
        }
        result = await ctx.session.elicit_form("Please choose", schema, _origin(ctx))
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    # ---- 2026-07-28: multi-round-trip requests (SEP-2322) and stateless checks (SEP-2575)
    name_question = _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])

    @tool
    async def test_input_required_result_elicitation(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: asks for the user's name with an in-band elicitation."""
        answer = _responses(ctx).get("user_name")
        if not answer or answer.get("action") != "accept" or not answer.get("content"):
            return _input_required({"user_name": name_question})
        return _text(f"Hello, {answer['content'].get('name', 'there')}!")

    @tool
    async def test_input_required_result_sampling(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: asks the client's model a question with an in-band sampling request."""
        answer = _responses(ctx).get("capital_question")
        if not answer:
            return _input_required(
                {"capital_question": _sample("What is the capital of France?", 100)}
            )
        content = answer.get("content") or {}
        return _text(f"The model said: {content.get('text', '')}")

    @tool
    async def test_input_required_result_list_roots(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: asks for the client's roots with an in-band roots/list request."""
        answer = _responses(ctx).get("client_roots")
        if not answer:
            return _input_required({"client_roots": ROOTS})
        roots = [r.get("uri") for r in answer.get("roots", [])]
        return _text(f"Roots: {', '.join(str(r) for r in roots)}")

    @tool
    async def test_input_required_result_request_state(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: round-trips integrity-protected requestState."""
        answer = _responses(ctx).get("confirm")
        if answer and ctx.request_state == "confirm-round-1":
            return _text("Confirmed: state-ok")
        question = _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        return _input_required({"confirm": question}, "confirm-round-1")

    @tool
    async def test_input_required_result_multiple_inputs(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: elicitation, sampling and roots in one round."""
        answers = _responses(ctx)
        keys = {"user_name", "greeting", "client_roots"}
        if keys <= set(answers) and ctx.request_state == "multiple-inputs":
            return _text("All inputs received: state-ok")
        return _input_required(
            {
                "user_name": name_question,
                "greeting": _sample("Generate a greeting", 50),
                "client_roots": ROOTS,
            },
            "multiple-inputs",
        )

    @tool
    async def test_input_required_result_multi_round(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: two elicitation rounds with evolving requestState."""
        answers = _responses(ctx)
        state = ctx.request_state
        if state == "round-2" and "step2" in answers:
            return _text("Multi-round input complete.")
        if state == "round-1" and "step1" in answers:
            return _input_required(
                {
                    "step2": _elicit(
                        "Step 2: What is your favorite color?",
                        {"color": {"type": "string"}},
                        ["color"],
                    )
                },
                "round-2",
            )
        return _input_required(
            {
                "step1": _elicit(
                    "Step 1: What is your name?", {"name": {"type": "string"}}, ["name"]
                )
            },  # noqa: E501
            "round-1",
        )

    @tool
    async def test_input_required_result_tampered_state(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: the SDK seals requestState, so a tampered one is refused before this runs."""
        if ctx.request_state == "tamper-check" and "confirm" in _responses(ctx):
            return _text("state verified")
        question = _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        return _input_required({"confirm": question}, "tamper-check")

    @tool
    async def test_input_required_result_capabilities(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """MRTR: only asks for input kinds the client declared."""
        caps = ctx.client_capabilities
        answers = _responses(ctx)
        wanted: dict[str, Any] = {}
        if caps is not None and caps.elicitation is not None and "user_name" not in answers:
            wanted["user_name"] = name_question
        if caps is not None and caps.sampling is not None and "greeting" not in answers:
            wanted["greeting"] = _sample("Generate a greeting", 50)
        if caps is not None and caps.roots is not None and "client_roots" not in answers:
            wanted["client_roots"] = ROOTS
        return _input_required(wanted) if wanted else _text("capabilities respected")

    @tool
    async def test_streaming_elicitation(
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        """Asks for input in-band (never as an independent request on the stream)."""
        if "user_name" in _responses(ctx):
            return _text("thanks")
        return _input_required({"user_name": name_question})

    @tool
    async def test_missing_capability(ctx: Context[Any, Any]) -> str:
        """Needs the client's sampling capability."""
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool needs the sampling capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "sampling is available"

    @tool
    def test_header_param(
        region: Annotated[
            str,
            Field(description="Mirrored as a header", json_schema_extra={"x-mcp-header": "Region"}),
        ],
    ) -> str:
        """Has a parameter mirrored into an Mcp-Param header (SEP-2243)."""
        return f"region={region}"

    def json_schema_2020_12_tool(
        name: str | None = None,
        address: dict[str, Any] | None = None,
        contactMethod: str | None = None,  # noqa: N803
        phone: str | None = None,
        email: str | None = None,
    ) -> str:
        """Tool with JSON Schema 2020-12 features."""
        return f"contact {name} by {contactMethod}"

    mcp.add_tool(json_schema_2020_12_tool, structured_output=False)
    # The suite checks that a hand-written 2020-12 schema reaches clients unchanged; the
    # SDK derives schemas from signatures, so the fixture swaps this one in (test-only).
    registered = mcp._tool_manager.get_tool("json_schema_2020_12_tool")
    assert registered is not None
    registered.parameters = JSON_SCHEMA_2020_12

    def dynamic_tool() -> str:
        """Added and removed by test_trigger_tool_change."""
        return "dynamic"

    def dynamic_prompt() -> str:
        """Added and removed by test_trigger_prompt_change."""
        return "dynamic prompt"

    @tool
    async def test_trigger_tool_change(ctx: Context[Any, Any]) -> str:
        """Adds or removes a tool and tells listening clients."""
        names = {t.name for t in await mcp.list_tools()}
        if "test_dynamic_tool" in names:
            mcp.remove_tool("test_dynamic_tool")
        else:
            mcp.add_tool(dynamic_tool, name="test_dynamic_tool")
        await ctx.notify_tools_changed()
        return "tools changed"

    @tool
    async def test_trigger_prompt_change(ctx: Context[Any, Any]) -> str:
        """Adds or removes a prompt and tells listening clients."""
        names = {p.name for p in await mcp.list_prompts()}
        if "test_dynamic_prompt" in names:
            mcp.remove_prompt("test_dynamic_prompt")
        else:
            mcp.add_prompt(Prompt.from_function(dynamic_prompt, name="test_dynamic_prompt"))
        await ctx.notify_prompts_changed()
        return "prompts changed"


def register_resources(mcp: MCPServer[Any]) -> None:
    @mcp.resource("test://static-text", mime_type="text/plain", description="Static text.")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", mime_type="image/png", description="A tiny PNG.")
    def static_binary() -> bytes:
        return base64.b64decode(IMAGE)

    @mcp.resource(
        "test://template/{id}/data", mime_type="application/json", description="A template."
    )
    def template(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @mcp.resource("test://watched-resource", mime_type="text/plain", description="Watched.")
    def watched() -> str:
        return "Watched resource content"


def register_prompts(mcp: MCPServer[Any]) -> None:
    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt that includes an embedded resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:  # noqa: N803
        return [
            UserMessage(
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri=resourceUri,
                        mime_type="text/plain",
                        text="Embedded resource content for testing.",
                    ),
                )
            ),
            UserMessage("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt that includes image content")
    def test_prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(ImageContent(type="image", data=IMAGE, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]

    @mcp.prompt(description="A prompt that needs input from the user first (SEP-2322)")
    async def test_input_required_result_prompt(
        ctx: Context[Any, Any],
    ) -> list[UserMessage] | InputRequiredResult:
        answer = _responses(ctx).get("user_context")
        if not answer:
            question = _elicit(
                "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
            )
            return _input_required({"user_context": question})
        context = (answer.get("content") or {}).get("context", "")
        return [UserMessage(f"Use this context: {context}")]


def register_legacy_handlers(mcp: Any) -> None:
    """``resources/subscribe``, ``resources/unsubscribe`` and ``logging/setLevel`` (2025)."""
    low = mcp.lowlevel
    subscribed: set[str] = set()

    async def subscribe(ctx: ServerRequestContext[Any, Any], p: SubscribeRequestParams) -> Any:
        subscribed.add(str(p.uri))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], p: UnsubscribeRequestParams) -> Any:
        subscribed.discard(str(p.uri))
        return EmptyResult()

    async def set_level(ctx: ServerRequestContext[Any, Any], p: SetLevelRequestParams) -> Any:
        log.info("log level set to %s", p.level)
        return EmptyResult()

    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    low.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


def install_fixtures(mount: McpMount) -> None:
    server = mount.server
    register_tools(server)
    register_resources(server)
    register_prompts(server)
    register_legacy_handlers(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The fixtures use protocol features 2026-07-28 deprecates (logging, sampling): expected.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(auth={"mode": "none"}, http={"port": args.port})
    app = create_app(settings)
    install_fixtures(app.state.mcp)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
