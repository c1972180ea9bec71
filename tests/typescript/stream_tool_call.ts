// The API guide's TypeScript client, streaming a tool call from the test server.
// Usage: tsx stream_tool_call.ts BASE_URL MODEL SEED   -> prints one JSON line with what it received.
import OpenAI from 'openai';

const [baseURL, model, seed] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'dummy' });

const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_user_info',
      description: '获取用户信息',
      parameters: {
        type: 'object',
        properties: { user_id: { type: 'string', maxLength: 12 } },
        required: ['user_id'],
      },
    },
  },
];

async function main(): Promise<void> {
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: '获取用户123的信息' }],
    tools,
    tool_choice: 'required',
    parallel_tool_calls: false,
    max_tokens: 200,
    seed: Number(seed),
    stream: true,
  });
  const calls: { id?: string; name?: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    for (const tc of choice.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { arguments: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function?.name) calls[tc.index].name = tc.function.name;
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
    finish = choice.finish_reason ?? finish;
  }
  // A call cut off by max_tokens (finish "length") is incomplete by definition; only finished ones must parse.
  const parsed = finish === 'length' ? calls : calls.map((c) => ({ ...c, parsed: JSON.parse(c.arguments) }));
  console.log(JSON.stringify({ finish, calls: parsed }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
