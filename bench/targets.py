"""The target each figure is held to, and the final table: every figure against its target, PASS or MISS."""

from __future__ import annotations

from bench.stats import kb, median, ms, p90, table


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def report(results: dict, quick: bool = False) -> str:
    rows: list[list[str]] = []

    o = results.get("overhead")
    if o:
        t = o["text"]
        med = median(t["ours_minus_bare"])
        rows.append(["text-turn overhead over a bare agno turn (median)", f"{ms(med)} ms",
                     f"AgentOS {ms(median(t['agentos_minus_bare']))} ms", "<= 8 ms", _verdict(med <= 8)])
        i = o["image"]
        rows.append(["image-turn overhead over a bare agno turn (median)", f"{ms(median(i['ours_minus_bare']))} ms",
                     f"AgentOS {ms(median(i['agentos_minus_bare']))} ms", "(no target)", "-"])
        for kind, most in (("text", 0.5), ("image", 0.4)):  # issue 28: the overhead against AgentOS's
            ours, agentos = median(o[kind]["ours_minus_bare"]), median(o[kind]["agentos_minus_bare"])
            rows.append([f"{kind}-turn overhead / AgentOS's (medians, same run)", f"x{ours / agentos:.2f}",
                         f"{ms(ours)} / {ms(agentos)} ms", f"<= x{most}", _verdict(ours / agentos <= most)])
        for kind in ("text", "image"):
            rt = o[kind]["round_trips"]
            n = rt["ours"]["round_trips"]
            rows.append([f"DB round trips per {kind} turn (early in a session)", str(n),
                         f"AgentOS {rt['agentos']['round_trips']}", "<= 4", _verdict(n <= 4)])

    g = results.get("growth")
    if g:
        first, last = g["windows"][0], g["windows"][-1]
        label = f"turns {last['first']}-{last['last']} vs {first['first']}-{first['last']}"
        t10 = g["turn10"]
        ratio = median(last["ours"]) / median(t10["ours"])
        agno_ratio = median(last["agentos"]) / median(t10["agentos"])
        rows.append([f"per-turn time, turns {last['first']}-{last['last']} vs turn 10",
                     f"x{ratio:.2f}", f"AgentOS x{agno_ratio:.2f}", "<= x1.10", _verdict(ratio <= 1.10)])
        wratio = median(last["ours"]) / median(first["ours"])
        rows.append([f"per-turn time, {label} (windows' medians)", f"x{wratio:.2f}",
                     f"AgentOS x{median(last['agentos']) / median(first['agentos']):.2f}", "(info)", "-"])
        if "ours_minus_bare" in last and "ours_minus_bare" in first:  # issue 28: flat with session length
            extra = median(last["ours_minus_bare"]) / median(first["ours_minus_bare"])
            rows.append([f"ours - bare agno, {label}", f"x{extra:.2f}",
                         f"{ms(median(last['ours_minus_bare']))} / {ms(median(first['ours_minus_bare']))} ms",
                         "<= x1.20", _verdict(extra <= 1.20)])
        bratio = last["ours_row_bytes"] / first["ours_row_bytes"]
        agno_b = last["agno_row_bytes"] / first["agno_row_bytes"]
        rows.append([f"per-turn stored row bytes, {label}", f"x{bratio:.2f}", f"AgentOS x{agno_b:.2f}",
                     "<= x1.10", _verdict(bratio <= 1.10)])
        worst = max(w["ours_round_trips"] for w in g["windows"])
        rows.append(["DB round trips per turn, any session length", str(worst),
                     f"AgentOS {max(w['agentos_round_trips'] for w in g['windows'])}", "<= 4", _verdict(worst <= 4)])

    hl = results.get("history")
    if hl:
        med = median(hl["ours"])
        rows.append([f"history load, {hl['messages']} messages / {hl['images']} images (median)", f"{ms(med)} ms",
                     f"Agno {ms(median(hl['agno']))} ms", "< 20 ms", _verdict(med < 20)])
        if hl.get("agno_s3"):  # issue 28: at least 3x faster than Agno with its S3 media storage
            s3 = median(hl["agno_s3"]) / med
            rows.append(["history load, Agno PostgresDb + S3MediaStorage / ours (medians)", f"x{s3:.1f}",
                         f"({ms(median(hl['agno_s3']))} / {ms(med)} ms)", ">= x3", _verdict(s3 >= 3)])
        speed = p90(hl["agno"]) / p90(hl["ours"])
        rows.append(["history load p90, Agno PostgresDb / ours", f"x{speed:.1f}",
                     f"({ms(p90(hl['agno']))} / {ms(p90(hl['ours']))} ms)", ">= x2", _verdict(speed >= 2)])

    b = results.get("bytes")
    if b:
        for size in b["sizes"]:
            n = size["ours_total"]
            rows.append([f"DB bytes per image turn, {kb(size['image_bytes'])} PNG (tables+indexes+TOAST)", kb(n),
                         f"Agno inline {kb(size['agno_total'])}", "< 4 KB", _verdict(n < 4096)])

    r = results.get("rollup")
    if r:
        scale = "" if r["rows"] >= 1_000_000 else " (quick: not the target's scale)"
        full = median(r["full_s"])
        rows.append([f"full rollup, {r['rows']:,} messages{scale}", f"{full:.2f} s", "n/a", "< 10 s",
                     _verdict(full < 10) if not scale else "-"])
        inc = median(r["incremental_s"])
        rows.append([f"incremental rollup ({r['incremental_days']} days recomputed){scale}", f"{inc:.2f} s", "n/a",
                     "< 1 s", _verdict(inc < 1) if not scale else "-"])

    c = results.get("cold_start")
    if c:
        bare = median(c["bare"]["seconds"])
        for name, entry in c.items():
            if name == "bare" or name.startswith("_"):
                continue
            med = median(entry["seconds"])
            if entry["agents"]:
                rows.append([f"import {entry['path']}", f"{med:.2f} s", f"bare agno {bare:.2f} s",
                             f"<= x1.15 bare ({1.15 * bare:.2f} s)", _verdict(med <= 1.15 * bare)])
            else:
                rows.append([f"import {entry['path']}", f"{med:.2f} s", "", "< 0.5 s", _verdict(med < 0.5)])

    m = results.get("messages")
    if m:
        med = median(m["ms"])
        rows.append([f"messages page of {m['messages']} with {m['photos']} photos (median)", f"{ms(med)} ms", "",
                     "< 1000 ms", _verdict(med < 1000)])

    conv = results.get("conversation")
    if conv:
        for name, row in conv.items():
            if name.startswith("_"):
                continue
            ours, agno = row["ours"], row["agno"]
            rows.append([f"failed turns: {name}", f"{ours['failed']}/{row['turns']}",
                         f"Agno defaults {agno['failed']}/{row['turns']}", "0", _verdict(ours["failed"] == 0)])
        chat = conv.get("40-turn chat, a fact in turn 1")
        if chat:
            ours = chat["ours"]
            rows.append(["turn-1 fact in the model's input at turn 40", "yes" if ours["fact"] else "no",
                         f"Agno defaults {'yes' if chat['agno']['fact'] else 'no'}", "yes", _verdict(ours["fact"])])
            share = ours["zar"] / ours["zar_uncached"] if ours["zar_uncached"] else 1
            rows.append(["40-turn chat: input cost with caching / without", f"{share:.0%}",
                         f"Agno defaults R{chat['agno']['zar']:.2f}", "<= 40%", _verdict(share <= 0.4)])
        for name, target in (("a phone photo a turn, 20 turns", 0.16), ("20-photo albums, 10 turns", 0.60)):
            row = conv.get(name)
            if row and row["ours"]["zar_uncached"]:
                share = row["ours"]["zar"] / row["ours"]["zar_uncached"]
                rows.append([f"{name.split(',')[0]}: input cost with caching / without", f"{share:.0%}",
                             f"R{row['ours']['zar']:.2f} vs R{row['ours']['zar_uncached']:.2f}", f"<= {target:.0%}",
                             _verdict(share <= target + 0.005)])
        if conv.get("_compaction"):
            from bench.conversation import compaction_ratio

            ratio = compaction_ratio(conv["_compaction"])
            rows.append(["compaction turn: first content byte / other turns'", f"x{ratio:.2f}",
                         f"summariser {conv['_compaction']['latency_ms']} ms", "<= x1.10", _verdict(ratio <= 1.10)])

    mem = results.get("memory")
    if mem:
        from chatcore.config import get_settings

        on, off = mem["on"], mem["off"]
        rows.append(["memory: facts of sessions 1-3 in session 10's input", f"{on['facts_in_input']}/3",
                     f"memory off {off['facts_in_input']}/3", "3/3", _verdict(on["facts_in_input"] == 3)])
        budget = get_settings().memory_max_tokens
        most = max(on["recall_tokens"])
        rows.append(["memory: recall tokens in a session's input (most)", str(most), "", f"<= {budget}",
                     _verdict(most <= budget)])
        drop = (off["cache_read_share"] - on["cache_read_share"]) * 100
        rows.append(["memory: cache-read share of later turns, on vs off",
                     f"{on['cache_read_share']:.0%}", f"off {off['cache_read_share']:.0%}", "at most 10 points lower",
                     _verdict(drop <= 10)])

    ph = results.get("photos")
    if ph:
        from bench.photos import MAX_CPU_S, MAX_PEAK_MB, worst_allowed

        worst = worst_allowed(ph)
        rows.append(["photos: the worst turn the limits allow, CPU", f"{worst['cpu_s']:.2f} s", "issue 28: 16.8 s",
                     f"<= {MAX_CPU_S:g} s", _verdict(worst["cpu_s"] <= MAX_CPU_S)])
        peak = max(r["peak_mb"] for r in ph.values())
        rows.append(["photos: peak memory of any turn (whole process)", f"{peak:.0f} MB", "issue 28: ~290 MB a photo",
                     f"<= {MAX_PEAK_MB} MB", _verdict(peak <= MAX_PEAK_MB)])

    tt = results.get("ttfb")
    if tt:
        from bench.ttfb import TARGET_MS

        for kind in ("text", "image"):
            med = median(tt[kind]["ttfb_ms"])
            rows.append([f"time to first token, {kind} turn: model's first byte -> client's (median)",
                         f"{ms(med)} ms", f"database at {tt['delay_ms']:.0f} ms",
                         f"<= {TARGET_MS:g} ms" if kind == "text" else "(no target)",
                         _verdict(med <= TARGET_MS) if kind == "text" else "-"])

    out = ["TARGETS" + ("  [--quick: smaller numbers than the targets assume]" if quick else "")]
    out.append(table(["figure", "ours", "Agno / reference", "target", "result"], rows))
    return "\n".join(out)
