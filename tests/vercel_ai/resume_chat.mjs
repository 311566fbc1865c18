// Resumes a session's stream as `useChat({ resume: true })` does: the AI SDK's own Chat and
// DefaultChatTransport, pointed at GET /api/sessions/<id>/stream/. Prints the chat's end state as JSON.
//
//   node resume_chat.mjs <base url> <session id> <api token>   (CHAT_MESSAGES: the messages to start from)
//
// With CHAT_SSE set, the transport's fetch answers that text as the stream instead of asking the server: for
// chunks the server's stream never carries (events outside turns), read through the SDK's own validating parser.
import { AbstractChat, DefaultChatTransport } from "ai";

const [baseUrl, sessionId, token] = process.argv.slice(2);

// What useChat keeps in React state, kept in plain fields.
class PlainChatState {
  constructor(messages) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage = (message) => {
    this.messages = [...this.messages, message];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = this.messages.map((old, at) => (at === index ? structuredClone(message) : old));
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor({ messages, ...init }) {
    super({ ...init, state: new PlainChatState(messages) });
  }
}

async function recordedStream() {
  return new Response(process.env.CHAT_SSE, {
    headers: { "content-type": "text/event-stream", "x-vercel-ai-ui-message-stream": "v1" },
  });
}

const errors = [];
const finishes = [];
const chat = new Chat({
  id: sessionId,
  messages: JSON.parse(process.env.CHAT_MESSAGES || "[]"),
  transport: new DefaultChatTransport({
    fetch: process.env.CHAT_SSE ? recordedStream : undefined,
    prepareReconnectToStreamRequest: ({ id }) => ({
      api: `${baseUrl}/api/sessions/${id}/stream/`,
      headers: { Authorization: `Token ${token}` },
    }),
  }),
  onError: (error) => errors.push(String(error)),
  onFinish: ({ message, isAbort, isDisconnect, isError }) => finishes.push({ id: message.id, isAbort, isDisconnect, isError }),
});

await chat.resumeStream();
console.log(JSON.stringify({
  status: chat.status,
  error: chat.error ? String(chat.error) : null,
  errors,
  finishes,
  messages: chat.messages,
}));
