// chatbridge agent console: one websocket, the protocol of docs/agent-protocol.md.
// Every text from customers is put in the page with textContent, never as HTML. Every text of
// ours goes through Django's JavaScript catalog (/jsi18n/, loaded before this file): gettext,
// ngettext, interpolate with named values; dates and times in the page's language.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LANGUAGE = document.documentElement.lang || undefined;
  const say = (text, values) => interpolate(text, values, true);
  const state = {
    agent: null,
    queue: [],
    rooms: new Map(), // room id -> room (with .messages)
    lastSeq: new Map(), // room id -> last sequence number applied
    agents: [],
    areas: [], // every area, `mine` for those this agent works
    supervisor: false,
    supervising: false, // the supervision view is on screen
    overview: { agents: [], rooms: [], alerts: [] },
    watched: null, // the open room a supervisor reads live
    defaultArea: null,
    reasons: [],
    templates: [],
    canned: [],
    timezone: undefined,
    unread: new Map(), // room id -> customer messages not seen yet
    selected: null,
    viewing: null, // a closed conversation being read (GET /agent/conversations/<id>)
    reading: 0, // counts the conversations asked for: only the last answer is shown
    taking: null, // the room this console asked to take, shown once it arrives
    panel: { room: null, rooms: null }, // the customer panel's earlier conversations
    socket: null,
    retry: 0,
    nextId: 1,
    typingTimer: null,
    lastTypingSent: 0,
  };

  // --- connection -------------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/agent/`);
    state.socket = socket;
    // Connected, and the back-off starts again, only once the server has answered with a
    // snapshot: a handshake it accepts and then drops (its channel layer down) is one more
    // failed attempt.
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = (event) => {
      setConnection(false);
      if (event.code === 4401) {
        location.href = "/accounts/login/?next=/agent/";
        return;
      }
      if (event.code === 4403) {
        toast(gettext("This account is not an agent's."));
        return;
      }
      // Back off up to 10 s, with jitter so a server restart is not met by every console at once.
      const delay = Math.min(10000, 500 * 2 ** state.retry++) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  function send(frame) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      toast(gettext("Not connected; trying again…"));
      return null;
    }
    frame.id = state.nextId++;
    state.socket.send(JSON.stringify(frame));
    return frame.id;
  }

  function setConnection(online) {
    const el = $("connection");
    el.textContent = online ? gettext("connected") : gettext("disconnected");
    el.className = `connection ${online ? "online" : "offline"}`;
  }

  // --- frames from the server -------------------------------------------------------------------

  function handle(frame) {
    switch (frame.type) {
      case "snapshot": return applySnapshot(frame);
      case "event": return applyEvent(frame);
      case "room": return addRoom(frame.room);
      case "queue": {
        // One area's queue, as it is now: it replaces that area's rooms in the console's queue.
        const known = new Set(state.queue.map((r) => r.id));
        state.queue = state.queue.filter((r) => areaOf(r) !== frame.area).concat(frame.queue)
          .sort((a, b) => (a.queued_at < b.queued_at ? -1 : a.queued_at > b.queued_at ? 1 : a.id - b.id));
        if (frame.queue.some((r) => !known.has(r.id))) alertAgent(gettext("A customer is waiting"), "");
        renderTitle();
        return renderQueue();
      }
      case "heartbeat": return checkSequences(frame.rooms);
      case "typing": return showTyping(frame.room);
      case "alert": {
        // For supervisors: a customer waiting too long.
        state.overview.alerts = [frame.alert, ...state.overview.alerts.filter((a) => a.id !== frame.alert.id)];
        const text = alertText(frame.alert);
        toast(text);
        alertAgent(gettext("Alert"), text);
        return renderSupervision();
      }
      case "available":
        // A supervisor switched this agent.
        $("available").checked = frame.available;
        state.agent.available = frame.available;
        toast(frame.available ? gettext("A supervisor made you available.") : gettext("A supervisor made you unavailable: no new conversations come to you."));
        return undefined;
      case "ack":
        if (frame.for === "overview") { state.overview = { agents: frame.agents, rooms: frame.rooms, alerts: frame.alerts || [] }; renderSupervision(); }
        if (frame.for === "watch") { state.watched = frame.detail; $("sv-messages").dataset.shown = ""; renderSupervision(); }
        if (frame.for === "agent_available") {
          const agent = state.overview.agents.find((a) => a.id === frame.agent);
          if (agent) agent.available = frame.available;
        }
        if (frame.agents) { state.agents = frame.agents; renderConversation(); }
        if (frame.for === "close" && frame.room === state.closing) toast(gettext("Conversation closed."));
        // Taken: shown now if its room frame came first, else when it comes (addRoom).
        if (frame.for === "take" && frame.room === state.taking && state.rooms.has(frame.room)) {
          showRoom(frame.room);
          render();
        }
        return;
      case "error":
        if (frame.code === "window_closed") windowClosed(state.selected);
        return toast(frame.message);
      default: return undefined;
    }
  }

  function applySnapshot(snapshot) {
    state.retry = 0;
    setConnection(true);
    const known = new Map(state.lastSeq);
    state.agent = snapshot.agent;
    state.queue = snapshot.queue;
    state.agents = snapshot.agents;
    state.reasons = snapshot.closure_reasons;
    state.areas = snapshot.areas || [];
    state.supervisor = Boolean(snapshot.supervisor);
    $("supervise").hidden = !state.supervisor;
    state.defaultArea = snapshot.default_area;
    state.lines = snapshot.lines || {};
    state.templates = snapshot.templates || [];
    state.timezone = snapshot.timezone;
    state.canned = snapshot.canned_replies || [];
    state.rooms = new Map();
    state.lastSeq = new Map();
    state.panel = { room: null, rooms: null }; // asked again: it may have changed meanwhile
    const catchUp = {};
    for (const room of snapshot.rooms) {
      state.rooms.set(room.id, room);
      // After a reconnect: ask for everything after the last event this console applied.
      if (known.has(room.id) && known.get(room.id) < room.seq) {
        state.lastSeq.set(room.id, known.get(room.id));
        catchUp[room.id] = known.get(room.id);
      } else {
        state.lastSeq.set(room.id, room.seq);
      }
    }
    if (Object.keys(catchUp).length) send({ type: "sync", rooms: catchUp });
    if (state.selected && !state.rooms.has(state.selected)) state.selected = null;
    $("available").checked = snapshot.agent.available;
    render();
  }

  function applyEvent(event) {
    if (event.watched) return applyWatched(event);
    // A supervisor reading one of their own rooms: the copy being read follows too.
    if (state.watched && state.watched.id === event.room) applyWatched({ ...event });
    const room = state.rooms.get(event.room);
    const last = state.lastSeq.get(event.room);
    if (last !== undefined) {
      if (event.seq <= last) return; // seen already
      if (event.seq > last + 1) {
        // A gap: fetch what is missing from the server, which replays it in order.
        send({ type: "sync", rooms: { [event.room]: last } });
        return;
      }
      state.lastSeq.set(event.room, event.seq);
    }
    const data = event.data;
    // A room changed hands or ended: someone's load changed, so the transfer list is asked again.
    if (event.kind.startsWith("room.")) send({ type: "agents" });
    switch (event.kind) {
      case "message.new":
        if (room && !room.messages.some((m) => m.id === data.id)) {
          room.messages.push(data);
          if (data.direction === "in") arrived(event.room, data);
        }
        // The customer wrote: WhatsApp's 24-hour window starts again from this message.
        if (room && data.direction === "in" && data.at) {
          room.window_ends_at = new Date(new Date(data.at).getTime() + DAY).toISOString();
        }
        break;
      case "note.new":
        if (room) {
          room.notes = room.notes || [];
          if (!room.notes.some((n) => n.id === data.id)) room.notes.push(data);
        }
        break;
      case "message.media":
      case "message.edited":
      case "message.deleted":
      case "message.status":
        if (room) {
          const message = room.messages.find((m) => m.id === data.id);
          if (message) Object.assign(message, data);
        }
        break;
      case "room.assigned":
        if (data.agent !== state.agent.id) removeRoom(event.room, gettext("Conversation transferred."));
        else if (data.how === "transferred") {
          const from = state.agents.find((a) => a.id === data.previous_agent);
          const name = from ? from.name : gettext("Another agent");
          toast(data.note
            ? say(gettext("%(name)s transferred a conversation to you: «%(note)s»"), { name, note: data.note })
            : say(gettext("%(name)s transferred a conversation to you."), { name }));
          alertAgent(gettext("Conversation transferred to you"), data.note || "");
        } else if (data.how !== "taken") alertAgent(gettext("New conversation"), "");
        break;
      case "room.closed":
      case "room.released":
      case "room.returned_to_bot":
        removeRoom(event.room);
        break;
      case "room.area_transferred":
        removeRoom(event.room, interpolate(gettext("Conversation sent to the %(area)s queue."), { area: areaName(data.area) }, true));
        break;
      default:
        break;
    }
    render();
  }

  function take(roomId) {
    state.taking = roomId;
    send({ type: "take", room: roomId });
  }

  function addRoom(room) {
    state.rooms.set(room.id, room);
    state.lastSeq.set(room.id, room.seq);
    if (!state.selected) state.selected = room.id;
    if (room.id === state.taking) showRoom(room.id);
    render();
  }

  // The agent took this room: put its conversation on screen (leaving any being read).
  function showRoom(roomId) {
    state.taking = null;
    state.supervising = false;
    state.selected = roomId;
    state.viewing = null;
    state.unread.delete(roomId);
  }

  function removeRoom(roomId, message) {
    state.rooms.delete(roomId);
    state.lastSeq.delete(roomId);
    if (state.selected === roomId) state.selected = null;
    if (message) toast(message);
  }

  function checkSequences(latest) {
    const behind = {};
    for (const [id, seq] of Object.entries(latest)) {
      const last = state.lastSeq.get(Number(id));
      if (last !== undefined && last < seq) behind[id] = last;
    }
    if (Object.keys(behind).length) send({ type: "sync", rooms: behind });
  }

  function showTyping(roomId) {
    if (roomId !== state.selected) return;
    $("typing").hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(() => { $("typing").hidden = true; }, 3000);
  }

  // --- rendering --------------------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  function render() {
    if (state.agent) {
      $("me").textContent = `${state.agent.name} · ${state.rooms.size}/${state.agent.capacity}`;
    }
    renderQueue();
    renderRooms();
    renderConversation();
    renderHistory();
    renderPanel();
    renderSupervision();
    renderTitle();
  }

  // A room's area: its own, or the default one (rooms from before areas have none).
  function areaOf(room) {
    return room.area ?? state.defaultArea;
  }

  // The business number the customer wrote to, when the bank has several ("" for the main one).
  function lineName(room) {
    return (state.lines || {})[room.line] || "";
  }

  function areaName(areaId) {
    const area = state.areas.find((a) => a.id === areaId);
    return area ? area.name : "";
  }

  // What is offered in a room: the global ones, and its area's.
  function inRoomArea(items, room) {
    return items.filter((item) => item.area === null || item.area === undefined || (room && item.area === areaOf(room)));
  }

  function atCapacity() {
    return state.agent && state.rooms.size >= state.agent.capacity;
  }

  function renderQueue() {
    $("queue-count").textContent = state.queue.length;
    const full = atCapacity();
    $("queue").replaceChildren(...state.queue.map((room) => el("li", { dataset: { room: room.id } },
      el("button", {
        textContent: gettext("Take"),
        className: "take",
        disabled: full,
        title: full ? say(ngettext(
          "You have %(count)s of %(capacity)s conversation: close or transfer it to take another.",
          "You have %(count)s of %(capacity)s conversations: close or transfer one to take another.",
          state.agent.capacity,
        ), { count: state.rooms.size, capacity: state.agent.capacity }) : "",
        onclick: () => take(room.id),
      }),
      el("div", { textContent: room.customer.name || room.customer.number }),
      lineName(room) ? el("div", { className: "meta line", textContent: lineName(room) }) : "",
      (state.supervisor ? state.areas.length : state.areas.filter((a) => a.mine).length) > 1 ? el("div", { className: "meta area", textContent: areaName(areaOf(room)) }) : "",
      room.preview ? el("div", { className: "preview", textContent: room.preview }) : "",
      room.handoff_note ? el("div", { className: "note", textContent: room.handoff_note }) : "",
      el("div", { className: "meta waiting", textContent: say(gettext("%(number)s · waiting %(time)s"), { number: room.customer.number, time: elapsed(room.queued_at) }) }),
    )));
  }

  function renderRooms() {
    $("rooms").replaceChildren(...[...state.rooms.values()].map((room) => {
      const last = room.messages[room.messages.length - 1];
      const unread = state.unread.get(room.id) || 0;
      return el("li", {
        className: room.id === state.selected ? "selected" : "",
        dataset: { room: room.id },
        onclick: () => {
          state.selected = room.id;
          state.viewing = null;
          state.supervising = false;
          state.reading++; // a conversation still loading is not shown over this room
          state.unread.delete(room.id);
          send({ type: "agents" }); // who is free to take it, as of now
          render();
        },
      },
      unread ? el("span", { className: "unread", textContent: String(unread), title: say(ngettext("%(count)s unread", "%(count)s unread", unread), { count: unread }) }) : "",
      el("div", { textContent: room.customer.name || room.customer.number }),
      el("div", { className: "meta", textContent: last ? (last.text || `[${TYPE_LABELS[last.type] || last.type}]`).slice(0, 60) : "" }));
    }));
  }

  const DAY = 24 * 3600 * 1000;
  const TYPE_LABELS = {
    image: gettext("image"), sticker: gettext("sticker"), audio: gettext("audio"), video: gettext("video"),
    document: gettext("document"), location: gettext("location"), contacts: gettext("contact"),
    template: gettext("template"), reaction: gettext("reaction"),
  };
  const TICKS = { pending: "…", sending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✗" };
  const STATUSES = {
    pending: gettext("not sent yet"), sending: gettext("sending"), sent: gettext("sent"),
    delivered: gettext("delivered"), read: gettext("read"),
  };
  const AUTHORS = { customer: gettext("Customer"), bot: gettext("Bot"), agent: gettext("Agent"), system: gettext("System") };
  // What the customer's WhatsApp sent without words of theirs: said so, not shown as theirs.
  const PLACEHOLDERS = {
    unsupported: gettext("[a message WhatsApp does not let us show]"), reaction: gettext("[reaction removed]"),
  };

  function whoSaid(m) {
    if (m.type === "system") return gettext("WhatsApp notice");
    return AUTHORS[m.author] || m.author;
  }

  function renderConversation() {
    const room = state.viewing || state.supervising ? undefined : state.rooms.get(state.selected);
    $("conversation").hidden = !room;
    $("empty").hidden = Boolean(room || state.viewing || state.supervising);
    if (!room) return;
    $("room-title").textContent = [`${room.customer.name || ""} ${room.customer.number}`, lineName(room)].filter(Boolean).join(" · ");
    $("room-note").textContent = room.handoff_note || "";
    renderWindow(room);
    renderComposer(room);
    reasonOptions($("reason"), room);
    // Only agents who can take it now: online, available, with a free place; and the other
    // areas' queues (level 1 to level 2 and back).
    const others = state.agents.filter((a) => a.id !== state.agent.id && a.online && a.available && a.load < a.capacity);
    const areas = state.areas.filter((a) => a.id !== areaOf(room));
    const targets = [
      ...others.map((a) => [`agent:${a.id}`, agentLabel(a)]),
      ...areas.map((a) => [`area:${a.id}`, interpolate(gettext("%(area)s queue"), { area: a.name }, true)]),
    ];
    $("transfer").disabled = !options($("transfer-to"), targets, { empty: gettext("Nobody free now") });
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    // Messages and the agents' internal notes, in the order they were written.
    list.replaceChildren(...timeline(room.messages, room.notes));
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  // Messages, internal notes and (for a closed conversation) what happened, in time order.
  function timeline(messages, notes = [], events = []) {
    return [
      ...messages.map((m) => ({ at: m.at, node: messageNode(m) })),
      ...(notes || []).map((n) => ({ at: n.at, node: noteNode(n) })),
      ...events.map((e) => ({ at: e.at, node: eventNode(e) })),
    ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)).map((entry) => entry.node);
  }

  // A select's options [[value, label]], keeping what was chosen if it is still offered: with
  // `first` always leading ("Closure reason…"), or `empty` alone when there is none. How many.
  function options(select, items, { first, empty } = {}) {
    const chosen = select.value;
    const nodes = items.map(([value, label]) => el("option", { value, textContent: label }));
    if (first) nodes.unshift(el("option", { value: "", textContent: first }));
    else if (!items.length && empty) nodes.push(el("option", { value: "", textContent: empty }));
    select.replaceChildren(...nodes);
    if (items.some(([value]) => String(value) === chosen)) select.value = chosen;
    return items.length;
  }

  // The closure reasons a room offers: the global ones and its area's.
  function reasonOptions(select, room) {
    options(select, inRoomArea(state.reasons, room).map((r) => [r.id, r.title]), { first: gettext("Closure reason…") });
  }

  function agentLabel(agent) {
    return `${agent.name} (${agent.load}/${agent.capacity})`;
  }

  function noteNode(note) {
    return el("li", { className: "internal-note", dataset: { note: note.id } },
      el("span", { className: "who", textContent: say(gettext("Internal note by %(name)s · %(time)s"), { name: note.author_name, time: clock(note.at) }) }),
      el("span", { className: "text", textContent: note.text }));
  }

  function messageNode(m) {
    return el("li", {
      className: `${m.direction} ${m.author}${m.deleted_at ? " deleted" : ""}`, dataset: { message: m.id },
    },
    el("span", { className: "who", textContent: whoSaid(m) },
      m.at ? el("time", { dateTime: m.at, textContent: ` · ${clock(m.at)}`, title: new Date(m.at).toLocaleString(LANGUAGE, { timeZone: state.timezone }) }) : ""),
    ...messageBody(m),
    m.direction === "out" ? el("span", {
      className: `tick ${m.status}`,
      textContent: TICKS[m.status] || "",
      title: m.status === "failed" ? `${m.error_detail || ""} (${m.error_code || ""})` : STATUSES[m.status] || m.status,
    }) : "");
  }

  // What a message shows besides who said it: each part built with textContent, links only to
  // chatbridge's own file view or to https addresses.
  function messageBody(m) {
    const parts = [];
    if (m.forwarded) parts.push(el("div", { className: "meta", textContent: gettext("Forwarded") }));
    if (m.referral) {
      const ad = m.referral;
      parts.push(el("div", { className: "referral" },
        el("strong", { textContent: `${gettext("Came from an ad:")} ` }),
        `${ad.headline || ""}${ad.body ? ` — ${ad.body}` : ""}`,
        ad.source_url ? " " : "", ad.source_url ? safeLink(ad.source_url, gettext("see the ad")) : ""));
    }
    if (m.quoted && Object.keys(m.quoted).length) {
      parts.push(el("blockquote", { className: "quoted", textContent: m.quoted.text || gettext("(an earlier message)") }));
    }
    if (m.media) parts.push(mediaNode(m));
    if (m.location) {
      const place = m.location;
      parts.push(el("div", { className: "location" },
        el("div", { textContent: [place.name, place.address].filter(Boolean).join(" — ") || gettext("Location") }),
        el("div", { className: "meta", textContent: `${place.latitude}, ${place.longitude}` }),
        safeLink(place.map_url, gettext("See it on the map"))));
    } else if (m.contacts) {
      for (const card of m.contacts) {
        parts.push(el("div", { className: "contact-card" },
          el("strong", { textContent: card.name || gettext("Contact") }),
          ...card.phones.map((phone) => el("div", { textContent: say(gettext("Tel. %(phone)s"), { phone }) })),
          ...card.emails.map((email) => el("div", { textContent: email }))));
      }
    } else if (m.media) {
      if (m.text) parts.push(el("div", { className: "caption text", textContent: m.text }));
    } else if (m.text) {
      parts.push(el("span", { className: "text", textContent: m.text }));
    } else {
      parts.push(PLACEHOLDERS[m.type] || `[${TYPE_LABELS[m.type] || m.type}]`);
    }
    if (m.edited_at) parts.push(el("span", { className: "meta", textContent: ` ${gettext("(edited)")}` }));
    if (m.deleted_at) parts.push(el("div", { className: "meta", textContent: gettext("The customer deleted this message.") }));
    return parts;
  }

  function mediaNode(m) {
    const file = m.media;
    if (file.status === "pending") return el("div", { className: "meta", textContent: gettext("Downloading the file…") });
    if (file.status === "failed") {
      return el("div", { className: "media-error", textContent: say(gettext("Could not get the file (%(reason)s)"), { reason: file.error || "?" }) });
    }
    if (!file.url) return el("div", { className: "meta", textContent: gettext("File") });
    if (m.type === "image" || m.type === "sticker") {
      return el("a", { href: file.url, target: "_blank", rel: "noopener", className: "media" },
        el("img", { src: file.url, alt: file.file_name || gettext("image"), className: m.type === "sticker" ? "sticker" : "thumb", loading: "lazy" }));
    }
    if (m.type === "audio") return el("audio", { controls: true, preload: "none", src: file.url, className: "media" });
    if (m.type === "video") return el("video", { controls: true, preload: "metadata", src: file.url, className: "media thumb" });
    return el("a", { href: file.url, className: "document", download: file.file_name || "" },
      `${file.file_name || gettext("document")}`, el("span", { className: "meta", textContent: ` ${size(file.size)}` }));
  }

  function safeLink(href, label) {
    if (typeof href !== "string" || !href.startsWith("https://")) return "";
    return el("a", { href, textContent: label, target: "_blank", rel: "noopener noreferrer" });
  }

  function size(bytes) {
    if (!bytes) return "";
    if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // The server says the window has closed (this computer's clock may disagree): believe it.
  function windowClosed(roomId) {
    const room = state.rooms.get(roomId);
    if (!room) return;
    room.window_ends_at = new Date(Date.now() - 1000).toISOString();
    render();
  }

  // WhatsApp's codes for "outside the 24-hour window": Meta's 131047, Twilio's 63016.
  const WINDOW_CODES = [131047, 63016];

  // Outside WhatsApp's 24-hour window (or once WhatsApp said so) only a template goes.
  function needsTemplate(room) {
    if (room.window_ends_at && new Date(room.window_ends_at) <= Date.now()) return true;
    for (let i = room.messages.length - 1; i >= 0; i--) {
      const m = room.messages[i];
      if (m.direction === "in") return false;
      if (m.author === "agent" && m.status === "failed" && WINDOW_CODES.includes(m.error_code)) return true;
    }
    return false;
  }

  function templateText(template, fills) {
    const values = template.parameters.map((fill) => fills[fill] || "");
    const body = template.body.replace(/\{\{(\d+)\}\}/g, (_, n) => values[Number(n) - 1] ?? "");
    return template.header ? `${template.header}\n${body}` : body;
  }

  function renderComposer(room) {
    const closed = needsTemplate(room);
    $("composer").hidden = closed;
    $("templates").hidden = !closed;
    if (!closed) return;
    const select = $("template");
    const chosen = select.value;
    select.replaceChildren(...state.templates.map((t) => el("option", { value: t.id, textContent: `${t.name} (${t.language})` })));
    if (chosen && state.templates.some((t) => String(t.id) === chosen)) select.value = chosen;
    const template = room.templates_available
      ? state.templates.find((t) => String(t.id) === select.value)
      : undefined;
    select.hidden = !room.templates_available;
    $("send-template").disabled = !template;
    if (!room.templates_available) {
      $("template-preview").textContent = gettext("This customer writes through Twilio: chatbridge does not send templates through Twilio yet. Wait for the customer to write again.");
    } else {
      $("template-preview").textContent = template
        ? templateText(template, room.template_fills || {})
        : gettext("There are no approved templates: an operator adds them in the admin (Message templates).");
    }
  }

  function renderWindow(room) {
    const node = $("room-window");
    if (!room.window_ends_at) { node.textContent = ""; return; }
    const left = new Date(room.window_ends_at) - Date.now();
    node.className = left > 0 ? "window" : "window closed";
    node.textContent = left > 0
      ? say(gettext("24-hour window: %(hours)s h %(minutes)s min left"), { hours: Math.floor(left / 3600000), minutes: Math.floor((left % 3600000) / 60000) })
      : gettext("24-hour window closed: templates only");
  }

  // A message's time where the bank works: the hour today, the date before.
  function clock(iso) {
    const when = new Date(iso);
    const zone = state.timezone;
    const day = (date) => date.toLocaleDateString(LANGUAGE, { timeZone: zone });
    const hour = when.toLocaleTimeString(LANGUAGE, { timeZone: zone, hour: "2-digit", minute: "2-digit" });
    if (day(when) === day(new Date())) return hour;
    return `${when.toLocaleDateString(LANGUAGE, { timeZone: zone, day: "numeric", month: "short" })} ${hour}`;
  }

  // How long since `iso`, ticking: "45 s", "3 min", "1 h 5 min".
  function elapsed(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
    if (seconds < 60) return `${seconds} s`;
    const total = Math.floor(seconds / 60);
    return total < 60 ? `${total} min` : `${Math.floor(total / 60)} h ${total % 60} min`;
  }

  // A customer wrote in a room: counted unread unless it is in view, and announced.
  function arrived(roomId, message) {
    // In view only if its conversation is on screen (not behind a closed one being read).
    if (roomId === state.selected && !state.viewing && document.visibilityState === "visible") return;
    state.unread.set(roomId, (state.unread.get(roomId) || 0) + 1);
    const room = state.rooms.get(roomId);
    alertAgent(room ? room.customer.name || room.customer.number : gettext("Customer"), message.text || "");
  }

  // --- telling the agent: a short sound, a desktop notification, a count in the tab's title;
  // each switchable (kept in this browser).
  const prefs = {
    sound: localStorage.getItem("cb.sound") !== "off",
    notify: localStorage.getItem("cb.notify") === "on",
    title: localStorage.getItem("cb.title") !== "off",
  };

  // Called only for what the agent is not looking at (a room not in view, the queue, a
  // transfer): so the desktop notification goes even while this tab is open.
  function alertAgent(title, body) {
    if (prefs.sound) beep();
    if (prefs.notify && "Notification" in window && Notification.permission === "granted") {
      new Notification(title, { body: body.slice(0, 120), tag: "chatbridge" });
    }
    renderTitle();
  }

  let audio = null;
  function beep() {
    try {
      audio = audio || new AudioContext();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.25);
    } catch (error) {
      // No audio device: the title count and the notification still say it.
    }
  }

  function renderTitle() {
    const unread = [...state.unread.values()].reduce((a, b) => a + b, 0) + state.queue.length;
    const title = gettext("chatbridge · Console");
    document.title = unread && prefs.title ? `(${unread}) ${title}` : title;
  }

  function minutes(iso) {
    if (!iso) return "";
    return `${Math.max(0, Math.round((Date.now() - new Date(iso)) / 60000))} min`;
  }

  function toast(text) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(node.timer);
    node.timer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  // --- the past: the customer panel, closed conversations read-only, the search --------------

  // GET one of the console's JSON views; a session that ended goes to the login page.
  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (error) {
      toast(gettext("No connection to chatbridge; try again in a moment."));
      return null;
    }
    if (response.status === 401) { location.href = "/accounts/login/?next=/agent/"; return null; }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { toast(body.error || interpolate(gettext("The server refused (%s)."), [response.status])); return null; }
    return body;
  }

  // The panel of the room in view: who the customer is (with the room), and their earlier
  // conversations, asked for when the room is opened (one query on the server).
  function renderPanel() {
    const room = state.viewing || state.supervising ? null : state.rooms.get(state.selected);
    $("customer-panel").hidden = !room;
    if (!room) return;
    const customer = room.customer;
    const facts = [
      [gettext("Name"), customer.name || gettext("(no name)")],
      customer.profile_name && customer.profile_name !== customer.name ? [gettext("WhatsApp profile"), customer.profile_name] : null,
      [gettext("Number"), customer.number],
      customer.first_contact ? [gettext("First contact"), longDate(customer.first_contact)] : null,
    ].filter(Boolean);
    $("customer-facts").replaceChildren(...facts.flatMap(([term, value]) => [el("dt", { textContent: term }), el("dd", { textContent: value })]));
    $("customer-notes").hidden = !customer.notes;
    $("customer-notes").textContent = customer.notes || "";
    if (state.panel.room !== room.id) {
      state.panel = { room: room.id, rooms: null };
      getJSON(`/agent/rooms/${room.id}/history`).then((body) => {
        if (state.panel.room !== room.id) return; // another room opened meanwhile
        if (body) state.panel.rooms = body.rooms;
        else state.panel = { room: null, rooms: null }; // asked again at the next render
        if (body) renderPanel();
      });
    }
    const earlier = state.panel.rooms;
    if (earlier === null) {
      $("earlier").replaceChildren(el("li", { className: "meta", textContent: gettext("Loading…") }));
    } else if (!earlier.length) {
      $("earlier").replaceChildren(el("li", { className: "meta", textContent: gettext("This is their first conversation.") }));
    } else {
      $("earlier").replaceChildren(...earlier.map(conversationItem));
    }
  }

  // A closed conversation in a list (the panel's, the search's): click to read it.
  function conversationItem(conversation) {
    return el("li", { dataset: { conversation: conversation.id }, onclick: () => openConversation(conversation.id) },
      el("div", { textContent: `${longDate(conversation.closed_at || conversation.opened_at)} · ${conversation.agent_name || gettext("the bot")}` }),
      conversation.snippet ? el("div", { className: "preview" }, ...marked(conversation.snippet))
        : el("div", { className: "preview", textContent: conversation.preview || "" }),
      el("div", { className: "meta", textContent: [
        conversation.closed_reason,
        interpolate(ngettext("%s message", "%s messages", conversation.message_count), [conversation.message_count]),
        conversation.survey ? interpolate(gettext("survey %s/10"), [conversation.survey.nps]) : "",
      ].filter(Boolean).join(" · ") }));
  }

  // The customer's answers to the survey after the close (sent only once it is complete).
  function surveyText(survey) {
    const resolved = survey.resolved ? gettext("yes") : gettext("no");
    return [
      interpolate(gettext("Survey: would recommend us %s/10"), [survey.nps]),
      interpolate(gettext("resolved: %s"), [resolved]),
      interpolate(gettext("satisfaction %s/5"), [survey.satisfaction]),
      survey.comment ? `«${survey.comment}»` : "",
    ].filter(Boolean).join(" · ");
  }

  // The server marks the words that matched with \u0002 … \u0003: shown highlighted, as text.
  function marked(snippet) {
    return snippet.split(/(\u0002[^\u0003]*\u0003)/).filter(Boolean).map((part) => (part.startsWith("\u0002")
      ? el("mark", { textContent: part.slice(1, -1) })
      : document.createTextNode(part)));
  }

  async function openConversation(roomId) {
    const asked = ++state.reading;
    const body = await getJSON(`/agent/conversations/${roomId}`);
    // Only the last one asked for, and only if the agent did not go back to a room meanwhile.
    if (!body || asked !== state.reading) return;
    state.viewing = body;
    state.supervising = false;
    render();
    $("history-messages").scrollTop = 0;
  }

  const EVENT_TEXTS = {
    "room.queued": () => gettext("Waited in the queue for an agent"),
    "room.released": (e) => interpolate(gettext("%(actor)s put it back in the queue"), withActor(e), true),
    "room.returned_to_bot": (e) => interpolate(gettext("%(actor)s gave it back to the bot"), withActor(e), true),
    "room.assigned": (e) => {
      if (e.how === "transferred") {
        const text = interpolate(gettext("%(previous_agent)s transferred it to %(agent)s"), e, true);
        return e.note ? `${text}: «${e.note}»` : text;
      }
      if (e.how === "taken") return interpolate(gettext("%(agent)s took it from the queue"), e, true);
      return interpolate(gettext("Assigned to %(agent)s"), e, true);
    },
    "room.closed": (e) => (e.actor
      ? interpolate(gettext("Closed by %(actor)s: %(reason)s"), e, true)
      : interpolate(gettext("Closed: %(reason)s"), e, true)),
  };

  // An event nobody signed (the periodic job, an operator since removed) is chatbridge's.
  function withActor(event) {
    return { ...event, actor: event.actor || gettext("chatbridge") };
  }

  function eventNode(event) {
    const text = (EVENT_TEXTS[event.kind] || (() => event.kind))(event);
    return el("li", { className: "event" }, el("span", { className: "who", textContent: clock(event.at) }), text);
  }

  function renderHistory() {
    const conversation = state.supervising ? null : state.viewing;
    $("history").hidden = !conversation;
    if (!conversation) return;
    const customer = conversation.customer;
    $("history-title").textContent = `${customer.name || ""} ${customer.number}`;
    $("history-meta").textContent = [
      interpolate(gettext("Closed %s"), [longDate(conversation.closed_at)]),
      conversation.agent_name,
      conversation.closed_reason,
    ].filter(Boolean).join(" · ");
    $("history-survey").hidden = !conversation.survey;
    $("history-survey").textContent = conversation.survey ? surveyText(conversation.survey) : "";
    const events = conversation.events.filter((e) => e.kind !== "note.new");
    $("history-messages").replaceChildren(...timeline(conversation.messages, conversation.notes, events));
  }

  // A date as a person reads it, where the bank works: "3 nov 2026, 14:05".
  function longDate(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(document.documentElement.lang || "es", {
      timeZone: state.timezone, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  $("history-back").addEventListener("click", () => {
    state.viewing = null;
    state.reading++;
    state.unread.delete(state.selected); // its conversation is on screen again
    render();
  });
  $("search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("search-q").value.trim();
    if (text.length < 2) { toast(gettext("Type at least 2 characters to search.")); return; }
    const body = await getJSON(`/agent/search?q=${encodeURIComponent(text)}`);
    if (!body) return;
    $("search-box").hidden = false;
    $("search-results").replaceChildren(...(body.results.length
      ? body.results.map((result) => {
        const item = conversationItem(result);
        item.prepend(el("strong", { textContent: `${result.customer.name || ""} ${result.customer.number}` }));
        return item;
      })
      : [el("li", { className: "meta", textContent: gettext("No closed conversation matches.") })]));
  });
  $("search-clear").addEventListener("click", () => {
    $("search-box").hidden = true;
    $("search-q").value = "";
  });

  // --- supervision: every agent, every open room, one read live (supervisors only) ------------

  function renderSupervision() {
    $("supervise").setAttribute("aria-pressed", String(state.supervising));
    $("supervision").hidden = !state.supervising;
    if (!state.supervising) return;
    $("sv-alerts").replaceChildren(...(state.overview.alerts.length
      ? state.overview.alerts.map((alert) => el("li", { className: `alert ${alert.cause}`, dataset: { room: alert.room } },
        el("span", { className: "meta", textContent: `${clock(alert.at)} ` }), alertText(alert),
        el("button", { type: "button", className: "link", textContent: gettext("Watch"), onclick: () => send({ type: "watch", room: alert.room }) })))
      : [el("li", { className: "meta", textContent: gettext("No alerts in the last day.") })]));
    $("sv-agents").replaceChildren(...state.overview.agents.map((agent) => el("tr", { dataset: { agent: agent.id } },
      el("td", { textContent: agent.name }),
      el("td", { className: agent.online ? "online" : "offline", textContent: agent.online ? gettext("connected") : gettext("disconnected") }),
      el("td", {}, el("input", {
        type: "checkbox",
        checked: agent.available,
        ariaLabel: interpolate(gettext("%(name)s is available"), { name: agent.name }, true),
        onchange: (event) => send({ type: "agent_available", agent: agent.id, available: event.target.checked }),
      })),
      el("td", { textContent: `${agent.load}/${agent.capacity}` }),
      el("td", { textContent: agent.last_reply_at ? interpolate(gettext("%s ago"), [elapsed(agent.last_reply_at)]) : "—" }))));
    $("sv-rooms").replaceChildren(...state.overview.rooms.map((room) => el("tr", { dataset: { room: room.id } },
      el("td", { textContent: `${room.customer.name || ""} ${room.customer.number}` }),
      el("td", { textContent: areaName(areaOf(room)) }),
      el("td", { textContent: room.status === "queued" ? gettext("in the queue") : room.agent_name }),
      el("td", { textContent: elapsed(room.status === "queued" ? room.queued_at : room.last_customer_at) }),
      el("td", {}, el("button", { type: "button", textContent: gettext("Watch"), onclick: () => send({ type: "watch", room: room.id }) })))));
    renderWatched();
  }

  function alertText(alert) {
    const holder = state.agents.find((a) => a.id === alert.agent);
    if (alert.cause === "low_score") {
      return interpolate(gettext("%(customer)s would recommend us %(nps)s of 10 (survey, %(agent)s's room)."), { ...alert, agent: holder ? holder.name : "" }, true);
    }
    if (alert.cause === "queue_wait") {
      return interpolate(gettext("%(customer)s has waited %(minutes)s min in the %(area)s queue."), { ...alert, area: areaName(areaOf(alert)) }, true);
    }
    return interpolate(gettext("%(customer)s has waited %(minutes)s min for %(agent)s to answer."), { ...alert, agent: holder ? holder.name : "" }, true);
  }

  function renderWatched() {
    const room = state.watched;
    $("sv-watch").hidden = !room;
    if (!room) return;
    $("sv-title").textContent = `${room.customer.name || ""} ${room.customer.number}`;
    const holder = state.overview.agents.find((a) => a.id === room.agent);
    $("sv-meta").textContent = [
      areaName(areaOf(room)),
      room.status === "closed" ? gettext("Closed") : holder ? holder.name : gettext("in the queue"),
    ].filter(Boolean).join(" · ");
    const free = state.overview.agents.filter((a) => a.id !== room.agent && a.online && a.load < a.capacity);
    const offered = options($("sv-reassign-to"), free.map((a) => [a.id, agentLabel(a)]), { empty: gettext("Nobody free now") });
    $("sv-reassign").disabled = !offered || room.status === "closed";
    reasonOptions($("sv-reason"), room);
    $("sv-close").disabled = room.status === "closed";
    const list = $("sv-messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    // Redrawn only when what it shows changed: a playing audio or a scrolled list stays so.
    const shown = JSON.stringify([room.messages, room.notes]);
    if (list.dataset.shown !== shown) {
      list.dataset.shown = shown;
      list.replaceChildren(...timeline(room.messages, room.notes));
      if (atBottom) list.scrollTop = list.scrollHeight;
    }
  }

  // An event of the room a supervisor reads: applied to it, never to the agent's own rooms.
  function applyWatched(event) {
    const room = state.watched;
    if (!room || room.id !== event.room) return;
    if (event.seq <= room.seq) return; // in the detail already (or seen)
    room.seq = event.seq;
    const data = event.data;
    if (event.kind === "message.new" && !room.messages.some((m) => m.id === data.id)) room.messages.push(data);
    else if (event.kind === "note.new") room.notes = [...(room.notes || []), data];
    else if (event.kind.startsWith("message.")) Object.assign(room.messages.find((m) => m.id === data.id) || {}, data);
    else if (event.kind === "room.assigned") { room.agent = data.agent; room.status = "assigned"; }
    else if (event.kind === "room.closed") room.status = "closed";
    else if (event.kind === "room.released" || event.kind === "room.area_transferred") { room.agent = null; room.status = "queued"; }
    if (event.kind.startsWith("room.")) send({ type: "overview" });
    renderWatched();
  }

  $("supervise").addEventListener("click", () => {
    state.supervising = !state.supervising;
    if (state.supervising) send({ type: "overview" });
    render();
  });
  $("sv-unwatch").addEventListener("click", () => {
    if (state.watched) send({ type: "unwatch", room: state.watched.id });
    state.watched = null;
    renderSupervision();
  });
  $("sv-reassign").addEventListener("click", () => {
    const agent = Number($("sv-reassign-to").value);
    if (state.watched && agent) send({ type: "reassign", room: state.watched.id, agent });
  });
  $("sv-close").addEventListener("click", () => {
    const reason = $("sv-reason").value;
    if (!reason) { toast(gettext("Choose the closure reason.")); $("sv-reason").focus(); return; }
    if (!confirm(gettext("Close this conversation? The customer will receive the closing message."))) return;
    send({ type: "close", room: state.watched.id, reason: Number(reason) });
  });
  // The overview moves by itself while it is on screen (and the socket is up, the tab seen).
  setInterval(() => {
    if (state.supervising && state.socket && state.socket.readyState === WebSocket.OPEN && document.visibilityState === "visible") {
      send({ type: "overview" });
    }
  }, 10000);

  // --- the agent's actions ----------------------------------------------------------------------

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (!text || !state.selected) return;
    // An internal note stays in chatbridge: the customer never sees it.
    const kind = $("internal").checked ? "note" : "send";
    if (send({ type: kind, room: state.selected, text }) !== null) $("text").value = "";
  });
  // --- canned replies: "/" at the start of the composer lists them, filtered by what follows;
  // Enter (or a click) puts the chosen one, filled for this room, in the composer to read first.
  function cannedMatches() {
    const typed = $("text").value;
    if (!typed.startsWith("/")) return [];
    const wanted = typed.slice(1).trim().toLowerCase();
    return inRoomArea(state.canned, state.rooms.get(state.selected)).filter((c) => c.shortcut.toLowerCase().startsWith(wanted) || c.title.toLowerCase().includes(wanted));
  }

  function cannedFill(reply) {
    const room = state.rooms.get(state.selected);
    const fills = (room && room.template_fills) || {};
    return reply.text.replace(/\{([a-z_]+)\}/g, (whole, name) => fills[name] ?? whole);
  }

  function renderCanned() {
    const matches = cannedMatches();
    $("canned").hidden = !matches.length;
    $("canned").replaceChildren(...matches.map((reply, index) => el("li", {
      className: index === 0 ? "first" : "",
      role: "option",
      onmousedown: (event) => { event.preventDefault(); useCanned(reply); },
    }, el("strong", { textContent: `/${reply.shortcut} ` }), reply.title,
    el("div", { className: "meta", textContent: cannedFill(reply).slice(0, 120) }))));
  }

  function useCanned(reply) {
    $("text").value = cannedFill(reply);
    $("canned").hidden = true;
    $("text").focus();
  }

  $("text").addEventListener("input", renderCanned);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !$("canned").hidden) {
      event.preventDefault();
      const [first] = cannedMatches();
      if (first) useCanned(first);
      return;
    }
    if (event.key === "Escape") $("canned").hidden = true;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (state.selected && Date.now() - state.lastTypingSent > 2000) {
      state.lastTypingSent = Date.now();
      send({ type: "typing", room: state.selected });
    }
  });
  // --- attachments: checked here against WhatsApp's limits (the server checks again) ----------

  const MB = 1024 * 1024;
  const LIMITS = { image: 5 * MB, video: 16 * MB, audio: 16 * MB, document: 100 * MB, sticker: 500 * 1024 };
  const KINDS = {
    "image/jpeg": "image", "image/png": "image", "image/webp": "sticker",
    "video/mp4": "video", "video/3gpp": "video",
    "audio/aac": "audio", "audio/amr": "audio", "audio/mpeg": "audio", "audio/mp4": "audio", "audio/ogg": "audio",
    "text/plain": "document", "application/pdf": "document", "application/msword": "document",
    "application/vnd.ms-excel": "document", "application/vnd.ms-powerpoint": "document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "document",
  };

  async function attach(file) {
    if (!state.selected || !file) return;
    const kind = KINDS[file.type];
    if (!kind) { toast(say(gettext("WhatsApp does not carry files of type %(type)s."), { type: file.type || gettext("unknown") })); return; }
    if (file.size > LIMITS[kind]) { toast(say(gettext("Too large: %(size)s (at most %(limit)s)."), { size: size(file.size), limit: size(LIMITS[kind]) })); return; }
    const form = new FormData();
    form.append("file", file);
    form.append("caption", $("text").value.trim());
    const token = document.querySelector("[name=csrfmiddlewaretoken]").value;
    $("attach-status").textContent = say(gettext("Sending %(name)s…"), { name: file.name });
    try {
      const response = await fetch(`/agent/rooms/${state.selected}/files`, {
        method: "POST", body: form, headers: { "X-CSRFToken": token }, credentials: "same-origin",
      });
      if (response.status === 401 || response.redirected) {
        location.href = "/accounts/login/?next=/agent/";  // the session ended: nothing was sent
        return;
      }
      const answer = await response.json().catch(() => ({}));
      if (answer.code === "window_closed") windowClosed(state.selected);
      if (!response.ok) { toast(answer.error || say(gettext("Not sent (%(status)s)"), { status: response.status })); return; }
      $("text").value = "";
    } catch (error) {
      toast(gettext("The file was not sent: no connection."));
    } finally {
      $("attach-status").textContent = "";
      $("file").value = "";
    }
  }

  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (event) => attach(event.target.files[0]));
  $("conversation").addEventListener("dragover", (event) => { event.preventDefault(); $("conversation").classList.add("dropping"); });
  $("conversation").addEventListener("dragleave", () => $("conversation").classList.remove("dropping"));
  $("conversation").addEventListener("drop", (event) => {
    event.preventDefault();
    $("conversation").classList.remove("dropping");
    attach(event.dataTransfer.files[0]);
  });

  // Alt+N: take the customer who has waited longest (when there is a place).
  document.addEventListener("keydown", (event) => {
    if (event.altKey && event.key.toLowerCase() === "n" && state.queue.length && !atCapacity()) {
      event.preventDefault();
      take(state.queue[0].id);
    }
  });

  $("template").addEventListener("change", () => renderComposer(state.rooms.get(state.selected)));
  $("templates").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.selected) send({ type: "template", room: state.selected, template: Number($("template").value) });
  });

  $("close").addEventListener("click", () => {
    const reason = $("reason").value;
    if (!reason) { toast(gettext("Choose the closure reason.")); $("reason").focus(); return; }
    const title = state.reasons.find((r) => String(r.id) === reason)?.title || reason;
    if (!confirm(say(gettext("Close this conversation? Reason: %(reason)s. The customer will receive the closing message."), { reason: title }))) return;
    state.closing = state.selected;
    send({ type: "close", room: state.selected, reason: Number(reason) });
  });
  $("release").addEventListener("click", () => send({ type: "release", room: state.selected }));
  $("transfer").addEventListener("click", () => {
    const [kind, id] = $("transfer-to").value.split(":");
    if (!id) return;
    if (kind === "area") send({ type: "transfer_area", room: state.selected, area: Number(id), note: $("transfer-note").value });
    else send({ type: "transfer", room: state.selected, agent: Number(id), note: $("transfer-note").value });
    $("transfer-note").value = "";
  });
  $("to-bot").addEventListener("click", () => send({ type: "to_bot", room: state.selected }));
  $("available").addEventListener("change", (event) => {
    send({ type: "available", available: event.target.checked });
  });
  // What moves by itself: the waiting times every second, the window's countdown and the
  // transfer list (who is free) every 15 s.
  setInterval(() => {
    for (const node of document.querySelectorAll("#queue li")) {
      const room = state.queue.find((r) => String(r.id) === node.dataset.room);
      const waiting = node.querySelector(".waiting");
      if (room && waiting) waiting.textContent = say(gettext("%(number)s · waiting %(time)s"), { number: room.customer.number, time: elapsed(room.queued_at) });
    }
  }, 1000);
  setInterval(() => {
    const room = state.rooms.get(state.selected);
    if (room) { renderWindow(room); renderComposer(room); }
    if (state.socket && state.socket.readyState === WebSocket.OPEN) send({ type: "agents" });
  }, 15000);
  $("transfer-to").addEventListener("focus", () => send({ type: "agents" }));

  // The language selector: Django's set_language, back to this page in the chosen language.
  $("language").addEventListener("change", (event) => event.target.form.submit());

  // The agent's switches for being told.
  $("pref-sound").checked = prefs.sound;
  $("pref-notify").checked = prefs.notify;
  $("pref-title").checked = prefs.title;
  $("pref-title").addEventListener("change", (event) => {
    prefs.title = event.target.checked;
    localStorage.setItem("cb.title", prefs.title ? "on" : "off");
    renderTitle();
  });
  $("pref-sound").addEventListener("change", (event) => {
    prefs.sound = event.target.checked;
    localStorage.setItem("cb.sound", prefs.sound ? "on" : "off");
  });
  $("pref-notify").addEventListener("change", async (event) => {
    prefs.notify = event.target.checked;
    if (prefs.notify && "Notification" in window && Notification.permission !== "granted") {
      prefs.notify = (await Notification.requestPermission()) === "granted";
      event.target.checked = prefs.notify;
    }
    localStorage.setItem("cb.notify", prefs.notify ? "on" : "off");
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.selected) {
      state.unread.delete(state.selected);
      render();
    }
  });

  connect();
})();
