// Resumes a session's stream as `useChat({ resume: true })` does: the AI SDK's own Chat and
// DefaultChatTransport, pointed at GET /api/sessions/<id>/stream/. Prints the chat's end state as JSON.
//
//   node resume_chat.mjs <base url> <session id> <api token>   (CHAT_MESSAGES: the messages to start from)
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

const errors = [];
const finishes = [];
const chat = new Chat({
  id: sessionId,
  messages: JSON.parse(process.env.CHAT_MESSAGES || "[]"),
  transport: new DefaultChatTransport({
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
