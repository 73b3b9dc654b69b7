#!/usr/bin/env python3
"""An independent, labelled abuse workload for proviso (event contract v1).

Written WITHOUT reading proviso's abuse rules, its simulator, docs/rules.md or
the other abuse benchmarks: only the event contract (README "Event contract
v1", the edge's validation) and the labels format of `proviso rules backtest`.
It models a messaging population the way a spam team would describe it, so
that rules tuned elsewhere can be checked against traffic they never saw.

    python3 bench/independent_traffic.py --seed 1 --out e.ndjson --labels l.ndjson

Output
  --out     NDJSON events sorted by time (epoch milliseconds), no content
            fields ever; link_domain is always a bare domain.
  --labels  NDJSON, one line per account:
            {"phone", "label": "spam"|"ham", "behaviour", "first_abuse_ts"}

Labelling decision: EVERY account is labelled. Abusers are "spam" with the
behaviour below and first_abuse_ts = the epoch ms of their first abusive
outbound event (first spam message, group post or call; for a compromised
account, the attacker's first message). Legitimate accounts are "ham" with
first_abuse_ts null: the deliberately hard legitimate heavy senders carry
their own behaviour name, everyone else is "ordinary". So a backtest's
false positives show up per behaviour, ordinary people included.

The population (default --people 1500 legitimate accounts, and abusers in
proportion, about 140 at the default):
  * communities (families, neighbourhoods, workplaces) of 15-80 people, most
    people in one, some in two; address books are mostly one's communities,
    some acquaintances elsewhere and numbers that are not on the service;
    address books are mostly (not always) mutual;
  * numbers from India (+91 mobile), the US (+1) and Brazil (+55 11 9...),
    each with its local time zone and a diurnal curve (quiet at night,
    peaks at lunch and in the evening); conversations with replies (4%
    with someone not in the address book); family and friend groups;
    calls, voice notes, media; now and then a popular link; a few business
    chats, consent changes, partner links, and the odd block;
  * a holiday on day 2 (everyone greets more), accounts mostly registered
    long before the window, some new sign-ups in it.

Abusers (label "spam"):
  burst_sender          new account, hundreds of messages to strangers within
                        minutes, most with a link
  device_farm           many accounts registered from a few devices, each
                        sending a few dozen stranger messages with links
  mass_reported         scam texts or scam calls to strangers at a moderate
                        rate; many recipients report and block them
  slow_link_ring        rings of 5-6 accounts, a few messages an hour to
                        strangers during waking hours for days, each with a
                        link to a freshly invented domain (on no list) that
                        the ring rotates daily; they chat among themselves
  compromised_account   an aged, normal account taken over (new device): it
                        sprays a link to its own contacts and some strangers
  warmup_spammer        new accounts that first chat with a few accomplices
                        for a day or two to look normal, then message
                        strangers with links at a moderate rate
  wrong_number_scam     "sorry, wrong number" openers to a handful of
                        strangers a day; some reply, and days later the
                        conversation gets an (invented) investment link
  group_link_spammer    posts an invented link into dozens of groups daily
  partner_flagged       linked to the partner network, flagged there, and
                        messaging strangers at a low rate

Legitimate heavy senders (label "ham"; these must not be flagged):
  popular_link_sharer   shares a popular, long-lived domain with 40-120 of
                        their own contacts in an hour
  shop_owner            a small shop on an ordinary account: customers write
                        first, the shop replies with its own domain, and
                        sends an offer to past customers once
  group_admin           posts announcements to 15-40 groups every day
  holiday_greeter       greets 100-350 contacts on the holiday
  new_user_onboarding   signs up and tells 20-50 contacts "I'm here"
  delivery_courier      calls/texts 20-50 customers a day who are not in the
                        address book; customers answer
  ordinary              everyone else

No delete_account events: an erased subject could not be scored.
Python 3 standard library only; deterministic for given flags.
"""

import argparse
import datetime as dt
import json
import random

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

# Local-hour activity weights (0h..23h): quiet at night, lunch and evening peaks.
DIURNAL = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1.2, 3, 5, 6, 6, 6.5, 7.5, 7, 6, 5.5, 5.5, 6, 7, 8.5, 9, 8, 5, 2.5]

POPULAR_DOMAINS = [
    "youtube.com", "youtu.be", "instagram.com", "wikipedia.org", "amazon.in", "flipkart.com",
    "google.com", "cricbuzz.com", "ndtv.com", "spotify.com", "netflix.com", "nytimes.com",
    "bbc.co.uk", "globo.com", "mercadolivre.com.br", "reddit.com", "x.com", "facebook.com",
]
SPAM_WORDS = [
    "prize", "reward", "claim", "bonus", "win", "offer", "gift", "cash", "loan", "crypto", "earn",
    "daily", "lucky", "fast", "instant", "vip", "kyc", "update", "secure", "verify", "parcel",
    "track", "job", "task", "profit", "invest", "wallet", "redeem", "free", "promo",
]
SPAM_TLDS = ["top", "xyz", "click", "shop", "live", "online", "site", "icu", "buzz", "cfd", "sbs", "rest"]
SHOP_WORDS = ["sweets", "mobiles", "fashion", "bakery", "tailors", "hardware", "books", "optics", "pharma", "florist"]
SHOP_NAMES = ["sharma", "gupta", "silva", "lopez", "patel", "oliveira", "khan", "smith", "iyer", "costa"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"

COUNTRIES = [  # (country, share, utc offset hours)
    ("IN", 0.70, 5.5),
    ("US", 0.15, None),  # offset by area code
    ("BR", 0.15, -3.0),
]
US_AREAS = {"212": -5, "617": -5, "404": -5, "312": -6, "713": -6, "303": -7, "415": -8, "206": -8}


class Account:
    def __init__(self, idx, phone, country, tz):
        self.idx = idx
        self.phone = phone  # E.164
        self.country = country
        self.tz = tz  # hours from UTC
        self.contacts = []  # indices of on-service accounts in the address book
        self.close = []  # the few contacts written to most
        self.groups = []
        self.devices = []
        self.reg_ts = None
        self.rate = 0.0  # conversations started per day
        self.label = "ham"
        self.behaviour = "ordinary"
        self.first_abuse_ts = None
        self.owner_active_until = None  # compromised accounts: owner is locked out after this
        self.new_in_window = False  # registered during the window
        self.offline = []  # address-book numbers that are not on the service


class World:
    def __init__(self, seed, people, days, start_ms):
        self.rng = random.Random(seed)
        self.n_people = people
        self.days = days
        self.start = start_ms
        self.end = start_ms + days * DAY
        self.accounts = []
        self.used_numbers = set()
        self.used_ids = set()
        self.events = []  # (ts, seq, event)
        self.groups = {}  # group id -> member indices

    # ---------- identifiers ----------

    def new_number(self, country):
        r = self.rng
        while True:
            if country == "IN":
                phone = "+91" + r.choice("6789") + "".join(r.choice("0123456789") for _ in range(9))
            elif country == "US":
                area = r.choice(sorted(US_AREAS))
                exchange = r.choice("23456789") + r.choice("0123456789") + r.choice("0123456789")
                if exchange == "555":
                    continue
                phone = "+1" + area + exchange + "".join(r.choice("0123456789") for _ in range(4))
            else:
                phone = "+55119" + r.choice("6789") + "".join(r.choice("0123456789") for _ in range(7))
            if phone not in self.used_numbers:
                self.used_numbers.add(phone)
                return phone

    def new_id(self, prefix, letters=10):
        """Opaque ids of letters only: ids may not hold a phone-like digit run."""
        while True:
            value = prefix + "".join(self.rng.choice(LETTERS) for _ in range(letters))
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def new_account(self, country=None):
        r = self.rng
        if country is None:
            x, country = r.random(), "BR"
            for name, share, _ in COUNTRIES:
                if x < share:
                    country = name
                    break
                x -= share
        phone = self.new_number(country)
        tz = {"IN": 5.5, "BR": -3.0}.get(country)
        if tz is None:
            tz = US_AREAS[phone[2:5]]
        acct = Account(len(self.accounts), phone, country, tz)
        acct.devices = [self.new_id("dev-")]
        self.accounts.append(acct)
        return acct

    def spam_domain(self, theme=None):
        r = self.rng
        while True:
            words = r.sample(SPAM_WORDS, 2) if theme is None else [theme, r.choice(SPAM_WORDS)]
            sep = r.choice(["", "-"])
            domain = sep.join(words) + r.choice(["", str(r.randint(1, 99))]) + "." + r.choice(SPAM_TLDS)
            if domain not in self.used_ids:
                self.used_ids.add(domain)
                return domain

    # ---------- emitting ----------

    def emit(self, ts, event):
        ts = int(ts)
        if ts >= self.end + DAY:  # a reaction may spill a little past the window, no further
            return
        self.events.append((ts, len(self.events), dict(type=event.pop("type"), ts=ts, **event)))

    def written(self, acct):
        """The acting number as a person or client might write it."""
        p, x = acct.phone, self.rng.random()
        if x < 0.85:
            return p
        if p.startswith("+91"):
            return "+91 " + p[3:8] + " " + p[8:]
        if p.startswith("+1"):
            return "+1 (" + p[2:5] + ") " + p[5:8] + "-" + p[8:]
        return "+55 11 " + p[5:10] + "-" + p[10:]

    def message(self, ts, sender, to, kind=None, link=None):
        """Emit a message; False (nothing sent) when either side is not on the service yet."""
        if ts < (sender.reg_ts or 0) or ts < (to.reg_ts or 0):
            return False
        event = {"type": "message", "phone": self.written(sender), "to": to.phone, "kind": kind or self.kind()}
        if link:
            event["link_domain"] = link
        self.emit(ts, event)
        return True

    def group_message(self, ts, sender, group, kind=None, link=None):
        if ts < (sender.reg_ts or 0):
            return False
        event = {"type": "message", "phone": sender.phone, "group": group, "kind": kind or self.kind()}
        if link:
            event["link_domain"] = link
        self.emit(ts, event)
        return True

    def register(self, ts, acct, device=None, platform=None):
        acct.reg_ts = int(ts)
        platform = platform or self.rng.choices(["android", "ios", "web", "other"], [70, 25, 4, 1])[0]
        self.emit(ts, {"type": "register", "phone": acct.phone, "device": device or acct.devices[0], "platform": platform})

    def upload_contacts(self, ts, acct, extra_numbers=()):
        numbers = [self.accounts[i].phone for i in acct.contacts] + list(extra_numbers)
        self.rng.shuffle(numbers)
        self.emit(ts, {"type": "contacts", "phone": acct.phone, "contacts": numbers[:10_000]})

    def kind(self):
        return self.rng.choices(["text", "media", "voice", "call", "other"], [74, 13, 6, 5, 2])[0]

    # ---------- time ----------

    def local_time(self, acct, day, lo=0, hi=24):
        """A random UTC time on `day` of the window, drawn from the diurnal curve in acct's local hours [lo, hi)."""
        hours = list(range(lo, hi))
        hour = self.rng.choices(hours, [DIURNAL[h % 24] for h in hours])[0]
        local = self.start + day * DAY + hour * HOUR + self.rng.randrange(HOUR)
        return local - int(acct.tz * HOUR)

    def awake(self, acct, ts):
        local_hour = ((ts + int(acct.tz * HOUR)) // HOUR) % 24
        return 8 <= local_hour < 23

    def reply_delay(self):
        return int(self.rng.expovariate(1 / (4 * MIN))) + self.rng.randint(5_000, 60_000)

    # ---------- recipients' reactions ----------

    def react(self, ts, victim, spammer, p_report, p_block, p_reply, reasons=("spam",)):
        r = self.rng
        later = ts + int(r.expovariate(1 / (40 * MIN))) + MIN
        if r.random() < p_report:
            self.emit(later, {"type": "report", "phone": victim.phone, "target": spammer.phone, "reason": r.choice(reasons)})
        if r.random() < p_block:
            self.emit(later + r.randint(1_000, 30_000), {"type": "block", "phone": victim.phone, "target": spammer.phone})
        if r.random() < p_reply:
            self.message(ts + self.reply_delay(), victim, spammer, "text")

    def strangers(self, acct, n, pool=None):
        pool = pool if pool is not None else self.legit
        known = set(acct.contacts)
        out = []
        while len(out) < n:
            v = self.rng.choice(pool)
            if v.idx != acct.idx and v.idx not in known:
                out.append(v)
        return out


# ====================== the legitimate population ======================


def build_population(w):
    r = w.rng
    w.legit = [w.new_account() for _ in range(w.n_people)]
    by_country = {}
    for a in w.legit:
        by_country.setdefault(a.country, []).append(a)

    # Communities within a country; some people belong to a second one (work).
    communities = []
    for country in sorted(by_country):
        members = by_country[country][:]
        r.shuffle(members)
        i = 0
        while i < len(members):
            size = r.randint(15, 80)
            communities.append(members[i:i + size])
            i += size
    home = {}
    for c, members in enumerate(communities):
        for a in members:
            home[a.idx] = c
    books = {a.idx: set() for a in w.legit}
    for a in w.legit:
        circles = [(communities[home[a.idx]], 0.85)]
        if r.random() < 0.35:
            same_country = [c for c in communities if c[0].country == a.country and c is not communities[home[a.idx]]]
            if same_country:
                circles.append((r.choice(same_country), 0.4))
        for members, p in circles:
            for b in members:
                if b.idx != a.idx and r.random() < p:
                    books[a.idx].add(b.idx)
        for b in r.sample(w.legit, r.randint(3, 15)):  # acquaintances anywhere
            if b.idx != a.idx:
                books[a.idx].add(b.idx)
    # Address books are mostly mutual.
    for a in w.legit:
        for b in sorted(books[a.idx]):
            if r.random() < 0.8:
                books[b].add(a.idx)
    for a in w.legit:
        a.contacts = sorted(books[a.idx])
        a.close = r.sample(a.contacts, min(len(a.contacts), r.randint(4, 12)))
        a.rate = min(30.0, r.lognormvariate(1.3, 0.7))  # conversations started per day, median ~3.7
        a.offline = ["+91" + r.choice("6789") + str(r.randrange(10**8, 10**9)) for _ in range(r.randint(2, 40))]
        if r.random() < 0.15:
            a.devices.append(w.new_id("web-"))

    # Groups: family/friend groups inside communities, interest groups across them.
    for members in communities:
        for _ in range(r.randint(1, 3)):
            if len(members) < 4:
                continue
            gid = w.new_id("grp-")
            w.groups[gid] = [b.idx for b in r.sample(members, r.randint(3, min(len(members), 30)))]
    for _ in range(w.n_people // 40):
        gid = w.new_id("grp-")
        w.groups[gid] = [b.idx for b in r.sample(w.legit, r.randint(8, 60))]
    for gid in sorted(w.groups):
        for i in w.groups[gid]:
            w.accounts[i].groups.append(gid)
    w.communities = communities


def legit_registrations(w):
    """Most accounts are old; about 6% sign up during the window."""
    r = w.rng
    for a in w.legit:
        if r.random() < 0.06:
            ts = w.local_time(a, r.randrange(w.days), 8, 22)
            a.new_in_window = True
        else:
            ts = w.start - r.randint(2, 900) * DAY + r.randrange(DAY)
        w.register(ts, a)
        w.upload_contacts(ts + r.randint(10_000, 5 * MIN), a, a.offline)
        if r.random() < 0.1:  # a refreshed address book in the window
            refresh = max(ts, w.start) + r.randrange(w.days * DAY // 2) + DAY
            w.upload_contacts(refresh, a, a.offline)


def active(w, a, ts):
    if ts < a.reg_ts:
        return False
    return a.owner_active_until is None or ts < a.owner_active_until


def ordinary_day(w, a, day, holiday):
    """One day of an ordinary person: conversations with replies, groups, calls, the odd link."""
    r = w.rng
    if not a.contacts:
        return
    rate = a.rate * (r.uniform(0.5, 1.5) if r.random() < 0.9 else 0.1)  # some days almost silent
    sessions = set()
    for _ in range(int(rate) + (r.random() < rate - int(rate))):
        ts = w.local_time(a, day)
        if not active(w, a, ts):
            continue
        sessions.add(ts // (3 * HOUR))
        x = r.random()
        if x < 0.04:  # someone not in the address book: a seller, a new acquaintance
            peer = r.choice(w.legit)
        elif x < 0.8 and a.close:
            peer = w.accounts[r.choice(a.close)]
        else:
            peer = w.accounts[r.choice(a.contacts)]
        if peer is a:
            continue
        link = r.choice(POPULAR_DOMAINS) if r.random() < 0.04 else None
        kind = w.kind()
        for _ in range(1 if kind == "call" else r.randint(1, 4)):
            w.message(ts, a, peer, kind, link)
            link = None
            ts += r.randint(5_000, 90_000)
        # The peer usually replies, and the exchange may go on a little.
        turn, other = peer, a
        while r.random() < (0.75 if turn is peer else 0.45) and kind != "call":
            ts += w.reply_delay() if w.awake(turn, ts) else 7 * HOUR
            if not active(w, turn, ts):
                break
            for _ in range(r.randint(1, 3)):
                w.message(ts, turn, other, w.kind())
                ts += r.randint(5_000, 60_000)
            turn, other = other, turn
    # Group chatter.
    for gid in a.groups:
        n = r.random() * (2.5 if holiday else 0.8)
        for _ in range(int(n) + (r.random() < n - int(n))):
            ts = w.local_time(a, day)
            if active(w, a, ts):
                w.group_message(ts, a, gid, None, r.choice(POPULAR_DOMAINS) if r.random() < 0.03 else None)
                sessions.add(ts // (3 * HOUR))
    # Holiday greetings to a handful of contacts.
    if holiday:
        for b in r.sample(a.contacts, min(len(a.contacts), r.randint(3, 12))):
            ts = w.local_time(a, day, 7, 12)
            if active(w, a, ts):
                w.message(ts, a, w.accounts[b], r.choice(["text", "media"]))
    for slot in sorted(sessions):
        device = a.devices[0] if len(a.devices) == 1 or r.random() < 0.8 else a.devices[1]
        w.emit(slot * 3 * HOUR + r.randrange(10_000), {"type": "session", "phone": a.phone, "device": device})
    # Rare side events.
    if r.random() < 0.01:
        w.emit(w.local_time(a, day), {"type": "consent", "phone": a.phone, "purpose": r.choice(["ads", "product"]), "granted": r.random() < 0.3})
    if r.random() < 0.03:
        biz = w.business_ids[r.randrange(len(w.business_ids))]
        ts = w.local_time(a, day, 9, 21)
        w.emit(ts, {"type": "business_message", "phone": a.phone, "business": biz, "direction": "out"})
        w.emit(ts + r.randint(3_000, 5 * MIN), {"type": "business_message", "phone": a.phone, "business": biz, "direction": "in"})
    if r.random() < 0.002:  # the odd block of a contact after a quarrel
        w.emit(w.local_time(a, day), {"type": "block", "phone": a.phone, "target": w.accounts[r.choice(a.contacts)].phone})


def partner_links(w):
    r = w.rng
    for a in w.legit:
        if r.random() < 0.25:
            ts = max(a.reg_ts, w.start) + r.randrange(w.days * DAY)
            w.emit(ts, {"type": "partner_account", "phone": a.phone, "partner_id": w.new_id("fn-")})


# ====================== hard legitimate heavy senders ======================


def pick_ordinary(w, n, min_contacts=0):
    pool = [a for a in w.legit if a.behaviour == "ordinary" and not a.new_in_window and len(a.contacts) >= min_contacts]
    return w.rng.sample(pool, min(n, len(pool)))


def widen_book(w, a, n):
    """Give a sociable person a big address book (mostly mutual)."""
    r = w.rng
    book = set(a.contacts)
    for b in r.sample(w.legit, min(n, len(w.legit))):
        if b.idx != a.idx and b.idx not in book:
            book.add(b.idx)
            if r.random() < 0.6:
                b.contacts = sorted(set(b.contacts) | {a.idx})
    a.contacts = sorted(book)
    w.upload_contacts(w.start - r.randint(1, 30) * DAY, a, a.offline)


def hard_negatives(w, scale, holiday_day):
    r = w.rng
    n = lambda k: max(1, round(k * scale))

    for a in pick_ordinary(w, n(15), 30):
        a.behaviour = "popular_link_sharer"
        widen_book(w, a, r.randint(40, 120))
        day = r.randrange(w.days)
        ts = w.local_time(a, day, 9, 21)
        domain = r.choice(POPULAR_DOMAINS)
        for b in r.sample(a.contacts, min(len(a.contacts), r.randint(40, 120))):
            ts += r.randint(5_000, 70_000)
            peer = w.accounts[b]
            w.message(ts, a, peer, "text", domain)
            if r.random() < 0.4:
                w.message(ts + w.reply_delay(), peer, a, "text")

    for a in pick_ordinary(w, n(10)):
        a.behaviour = "shop_owner"
        domain = r.choice(SHOP_NAMES) + r.choice(["", "-"]) + r.choice(SHOP_WORDS) + r.choice([".in", ".com", ".com.br", ".shop"])
        customers = []
        for day in range(w.days):
            for c in w.strangers(a, r.randint(4, 12)):
                ts = w.local_time(c, day, 9, 21)
                w.message(ts, c, a, "text")  # the customer writes first
                ts += w.reply_delay()
                for i in range(r.randint(1, 3)):
                    w.message(ts, a, c, r.choice(["text", "media"]), domain if i == 0 and r.random() < 0.6 else None)
                    ts += r.randint(10_000, 120_000)
                if r.random() < 0.5:
                    w.message(ts + w.reply_delay(), c, a, "text")
                customers.append(c)
        # One offer to everyone who wrote in, in an evening.
        ts = w.local_time(a, w.days - 2, 18, 20)
        seen = set()
        for c in customers:
            if c.idx not in seen:
                seen.add(c.idx)
                ts += r.randint(3_000, 30_000)
                w.message(ts, a, c, "media", domain)

    for a in pick_ordinary(w, n(10)):
        a.behaviour = "group_admin"
        admin_groups = []
        for _ in range(r.randint(15, 40)):
            gid = w.new_id("grp-")
            w.groups[gid] = [a.idx] + [b.idx for b in r.sample(w.legit, r.randint(10, 80))]
            admin_groups.append(gid)
        for day in range(w.days):
            ts = w.local_time(a, day, 7, 10)
            link = r.choice(POPULAR_DOMAINS + [None, None])
            for gid in admin_groups:
                ts += r.randint(4_000, 40_000)
                w.group_message(ts, a, gid, r.choice(["text", "media"]), link)
                if r.random() < 0.5:  # a member answers
                    member = w.accounts[r.choice(w.groups[gid][1:])]
                    w.group_message(ts + w.reply_delay(), member, gid, "text")

    for a in pick_ordinary(w, n(20), 20):
        a.behaviour = "holiday_greeter"
        widen_book(w, a, r.randint(100, 350))
        ts = w.local_time(a, holiday_day, 6, 10)
        for b in r.sample(a.contacts, min(len(a.contacts), r.randint(100, 350))):
            ts += r.randint(3_000, 45_000)
            peer = w.accounts[b]
            w.message(ts, a, peer, r.choice(["text", "media", "media"]))
            if r.random() < 0.5:
                w.message(ts + w.reply_delay(), peer, a, r.choice(["text", "media"]))

    new_users = [a for a in w.legit if a.new_in_window and a.behaviour == "ordinary" and len(a.contacts) >= 20]
    for a in r.sample(new_users, min(len(new_users), n(15))):
        a.behaviour = "new_user_onboarding"
        ts = a.reg_ts + r.randint(2, 20) * MIN
        for b in r.sample(a.contacts, min(len(a.contacts), r.randint(20, 50))):
            ts += r.randint(10_000, 90_000)
            peer = w.accounts[b]
            w.message(ts, a, peer, "text")
            if r.random() < 0.6:
                w.message(ts + w.reply_delay(), peer, a, "text")

    for a in pick_ordinary(w, n(8)):
        a.behaviour = "delivery_courier"
        for day in range(w.days):
            if r.random() < 0.15:  # day off
                continue
            ts = w.local_time(a, day, 9, 11)
            for c in w.strangers(a, r.randint(20, 50), [b for b in w.legit if b.country == a.country]):
                ts += r.randint(2, 20) * MIN
                w.message(ts, a, c, r.choice(["call", "call", "text"]))
                if r.random() < 0.7:
                    w.message(ts + w.reply_delay(), c, a, "text")


# ====================== abusers ======================


def new_abuser(w, behaviour, country=None):
    a = w.new_account(country or w.rng.choice(["IN", "IN", "IN", "US", "BR"]))
    a.label, a.behaviour = "spam", behaviour
    return a


def first_abuse(a, ts):
    if a.first_abuse_ts is None or ts < a.first_abuse_ts:
        a.first_abuse_ts = int(ts)


def spam_message(w, a, ts, victim, link, p_report, p_block, p_reply, kind="text", reasons=("spam",)):
    if w.message(ts, a, victim, kind, link):
        first_abuse(a, ts)
        w.react(ts, victim, a, p_report, p_block, p_reply, reasons)


def abusers(w, scale):
    r = w.rng
    n = lambda k: max(1, round(k * scale))

    for _ in range(n(22)):  # burst senders
        a = new_abuser(w, "burst_sender")
        ts = w.start + r.randrange(w.days * DAY)
        w.register(ts, a, platform="android")
        if r.random() < 0.4:
            w.upload_contacts(ts + 30_000, a, [])
        ts += r.randint(1, 15) * MIN
        domain = w.spam_domain()
        per_minute = r.randint(15, 90)
        for v in w.strangers(a, r.randint(120, 400)):
            ts += r.randint(200, 2 * 60_000 // per_minute)
            spam_message(w, a, ts, v, domain if r.random() < 0.7 else None, 0.03, 0.08, 0.02)

    for _ in range(n(4)):  # device farms: few devices, many accounts each
        devices = [w.new_id("dev-") for _ in range(r.randint(2, 3))]
        day = r.randrange(max(1, w.days - 2))
        farm_start = w.start + day * DAY + r.randrange(DAY)
        campaign = w.spam_domain()
        for _ in range(r.randint(5, 9)):  # accounts per farm
            a = new_abuser(w, "device_farm", "IN")
            device = r.choice(devices)
            a.devices = [device]
            ts = farm_start + r.randrange(6 * HOUR)
            w.register(ts, a, device, "android")
            w.emit(ts + 20_000, {"type": "session", "phone": a.phone, "device": device})
            ts += r.randint(10, 120) * MIN
            for v in w.strangers(a, r.randint(15, 40)):
                ts += r.randint(1, 12) * MIN
                spam_message(w, a, ts, v, campaign if r.random() < 0.8 else None, 0.04, 0.08, 0.02)

    for _ in range(n(18)):  # mass reported scammers and scam callers
        a = new_abuser(w, "mass_reported")
        caller = r.random() < 0.5
        w.register(w.start - r.randint(1, 60) * DAY, a)
        for day in sorted(r.sample(range(w.days), min(w.days, r.randint(1, 3)))):
            ts = w.local_time(a, day, 9, 17)
            for v in w.strangers(a, r.randint(30, 80)):
                ts += r.randint(2, 8) * MIN
                spam_message(w, a, ts, v, None if caller else (w.spam_domain() if r.random() < 0.3 else None),
                             0.3, 0.35, 0.05, "call" if caller else "text", ("spam", "scam", "fraud", "harassment"))

    for _ in range(n(5)):  # slow link rings
        ring = [new_abuser(w, "slow_link_ring") for _ in range(r.randint(5, 6))]
        offline = ["+91" + r.choice("6789") + str(r.randrange(10**8, 10**9)) for _ in range(8)]
        for a in ring:
            a.contacts = [b.idx for b in ring if b is not a]
            ts = w.start - r.randint(3, 30) * DAY + r.randrange(DAY)
            w.register(ts, a)
            w.upload_contacts(ts + 60_000, a, offline)
        domains = [w.spam_domain() for _ in range(w.days)]  # a fresh domain each day
        first_day = r.randrange(max(1, w.days // 3))
        for day in range(first_day, w.days):
            for a in ring:
                for hour in range(9, 22):
                    ts0 = w.start + day * DAY + hour * HOUR - int(a.tz * HOUR)
                    for _ in range(r.randint(1, 5)):  # a few an hour
                        ts = ts0 + r.randrange(HOUR)
                        v = w.strangers(a, 1)[0]
                        spam_message(w, a, ts, v, domains[day] if r.random() < 0.9 else None, 0.01, 0.04, 0.03)
                    if r.random() < 0.15:  # small talk inside the ring
                        mate = w.accounts[r.choice(a.contacts)]
                        w.message(ts0 + r.randrange(HOUR), a, mate, "text")
                        w.message(ts0 + r.randrange(HOUR) + 5 * MIN, mate, a, "text")
                if r.random() < 0.5:
                    w.emit(w.start + day * DAY + 9 * HOUR - int(a.tz * HOUR), {"type": "session", "phone": a.phone, "device": a.devices[0]})

    # Compromised: aged ordinary accounts taken over; the owner's normal traffic stops.
    campaign = w.spam_domain("verify")
    for a in pick_ordinary(w, n(10), 25):
        a.label, a.behaviour = "spam", "compromised_account"
        ts = w.start + r.randint(1, max(1, w.days - 1)) * DAY + r.randrange(DAY)
        if ts >= w.end:
            ts = w.end - 6 * HOUR
        a.owner_active_until = ts
        w.emit(ts, {"type": "session", "phone": a.phone, "device": w.new_id("dev-")})
        targets = [w.accounts[b] for b in r.sample(a.contacts, min(len(a.contacts), r.randint(30, 120)))]
        targets += w.strangers(a, r.randint(20, 80))
        r.shuffle(targets)
        ts += r.randint(2, 10) * MIN
        for v in targets:
            ts += r.randint(10_000, 90_000)
            spam_message(w, a, ts, v, campaign, 0.08, 0.05, 0.12, "text", ("spam", "hacked", "scam"))

    warm = [new_abuser(w, "warmup_spammer") for _ in range(n(10))]
    for a in warm:
        a.contacts = [b.idx for b in warm if b is not a][:4]
        reg_day = r.randrange(max(1, w.days - 4))
        ts = w.local_time(a, reg_day, 9, 20)
        w.register(ts, a)
        w.upload_contacts(ts + 40_000, a, ["+91" + r.choice("6789") + str(r.randrange(10**8, 10**9)) for _ in range(6)])
        warm_days = r.randint(1, 2)
        for day in range(reg_day, min(w.days, reg_day + warm_days)):  # look normal first
            for _ in range(r.randint(3, 8)):
                mate = w.accounts[r.choice(a.contacts)]
                t = w.local_time(a, day, 9, 22)
                w.message(t, a, mate)
                w.message(t + w.reply_delay(), mate, a)
        domain = w.spam_domain()
        for day in range(reg_day + warm_days, w.days):
            t = w.local_time(a, day, 9, 12)
            for v in w.strangers(a, r.randint(20, 60)):
                t += r.randint(4, 15) * MIN
                spam_message(w, a, t, v, domain if r.random() < 0.75 else None, 0.04, 0.08, 0.03)

    for _ in range(n(10)):  # wrong-number scams
        a = new_abuser(w, "wrong_number_scam")
        w.register(w.start - r.randint(20, 90) * DAY, a)
        domain = w.spam_domain("invest")
        hooked = []
        for day in range(w.days):
            for v in w.strangers(a, r.randint(4, 12)):
                ts = w.local_time(a, day, 10, 21)
                spam_message(w, a, ts, v, None, 0.05, 0.1, 0.0)
                if r.random() < 0.3:
                    hooked.append((v, day))
            for v, since in hooked:  # ongoing "friendships"
                if r.random() < 0.7:
                    ts = w.local_time(a, day, 10, 22)
                    link = domain if day - since >= 3 and r.random() < 0.4 else None
                    w.message(ts, a, v, "text", link)
                    w.message(ts + w.reply_delay(), v, a, "text")

    group_ids = sorted(w.groups)
    for _ in range(n(8)):  # group link spammers
        a = new_abuser(w, "group_link_spammer")
        reg = w.start + r.randrange(max(1, w.days - 2)) * DAY + r.randrange(DAY)
        w.register(reg, a)
        targets = r.sample(group_ids, min(len(group_ids), r.randint(20, 50)))
        for day in range((reg - w.start) // DAY, w.days):
            ts = max(reg + 10 * MIN, w.local_time(a, day, 8, 20))
            domain = w.spam_domain()
            for gid in targets:
                ts += r.randint(20_000, 4 * MIN)
                if not w.group_message(ts, a, gid, "text", domain):
                    continue
                first_abuse(a, ts)
                if r.random() < 0.3:
                    member = w.accounts[r.choice(w.groups[gid])]
                    w.emit(ts + r.randint(1, 60) * MIN, {"type": "report", "phone": member.phone, "target": a.phone, "reason": "spam"})

    for _ in range(n(5)):  # flagged by the partner network
        a = new_abuser(w, "partner_flagged")
        w.register(w.start - r.randint(5, 60) * DAY, a)
        partner_id = w.new_id("fn-")
        ts = w.start + r.randrange(max(1, w.days - 2) * DAY)
        w.emit(ts, {"type": "partner_account", "phone": a.phone, "partner_id": partner_id})
        w.emit(ts + r.randint(1, 24) * HOUR, {"type": "partner_flag", "phone": a.phone, "partner_id": partner_id, "reason": r.choice(["spam", "scam", "fake_account"])})
        domain = w.spam_domain()
        for day in range((ts - w.start) // DAY, w.days):
            t = w.local_time(a, day, 10, 14)
            for v in w.strangers(a, r.randint(10, 30)):
                t += r.randint(3, 20) * MIN
                spam_message(w, a, t, v, domain if r.random() < 0.5 else None, 0.03, 0.06, 0.03)


# ====================== main ======================


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--people", type=int, default=1500, help="legitimate accounts (abusers come in proportion: ~140 at 1500)")
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--start", default="2026-03-02", help="first day of the window (UTC date, must be in the past)")
    p.add_argument("--out", required=True)
    p.add_argument("--labels", required=True)
    args = p.parse_args()
    if args.people < 200 or args.days < 3:
        p.error("needs --people >= 200 and --days >= 3")

    start = dt.datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    w = World(args.seed, args.people, args.days, int(start.timestamp() * 1000))
    scale = args.people / 1500
    holiday_day = min(2, args.days - 1)
    w.business_ids = [w.new_id("biz-", 8) for _ in range(20)]

    build_population(w)
    legit_registrations(w)
    hard_negatives(w, scale, holiday_day)
    abusers(w, scale)  # before ordinary days: compromised owners stop at the takeover
    partner_links(w)
    for a in w.legit:
        for day in range(w.days):
            ordinary_day(w, a, day, day == holiday_day)

    w.events.sort(key=lambda e: (e[0], e[1]))
    with open(args.out, "w") as f:
        for _, _, event in w.events:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")
    counts = {}
    with open(args.labels, "w") as f:
        for a in w.accounts:
            f.write(json.dumps({"phone": a.phone, "label": a.label, "behaviour": a.behaviour, "first_abuse_ts": a.first_abuse_ts}) + "\n")
            counts[(a.label, a.behaviour)] = counts.get((a.label, a.behaviour), 0) + 1
    spam = sum(c for (label, _), c in counts.items() if label == "spam")
    print(f"{len(w.events)} events, {len(w.accounts)} accounts ({spam} spam) -> {args.out}, {args.labels}")
    for (label, behaviour), c in sorted(counts.items()):
        print(f"  {label:5} {behaviour:22} {c}")


if __name__ == "__main__":
    main()
