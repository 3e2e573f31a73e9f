// A client on the TypeScript MCP SDK v1 (@modelcontextprotocol/sdk, pinned in package.json):
// connects over Streamable HTTP with a bearer token, calls `search`, reads the first result
// as a resource and prints one JSON line for the Python test to check.
//
//   node sdk_client.mjs <mcp-url> <bearer-token> <query>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, query] = process.argv.slice(2);
if (!url || !token || !query) {
  console.error("usage: node sdk_client.mjs <mcp-url> <bearer-token> <query>");
  process.exit(2);
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "kb-interop-ts-v1", version: "1.0.0" });
await client.connect(transport);

const tools = await client.listTools();
const search = await client.callTool({ name: "search", arguments: { query, top_k: 3 } });
if (search.isError) {
  throw new Error(`search failed: ${JSON.stringify(search.content)}`);
}
const first = search.structuredContent.results[0];
const read = await client.readResource({ uri: first.uri });
const listed = await client.listResources();

console.log(
  JSON.stringify({
    protocolVersion: transport.protocolVersion ?? null,
    server: client.getServerVersion(),
    tools: tools.tools.map((t) => t.name),
    results: search.structuredContent.results.map((r) => ({ id: r.id, title: r.title, uri: r.uri })),
    resourceText: read.contents[0].text,
    resources: listed.resources.map((r) => r.uri),
  }),
);
await client.close();
