/// When the core next needs a tick, so the shell can sleep until then instead of waking every
/// `tick`: an idle agent's CPU is mostly wakeups, and on `lan` nine ticks in ten found nothing due.
///
/// A tick before `nextDeadline()` sends nothing, reports nothing and changes nothing a later tick
/// reads (`MembershipDeadlineTests` runs a mesh ticked only at its deadlines against one ticked
/// every `tick`). Inputs (a datagram, `updateSelf`, `revoke`, `leave`) can move the deadline earlier
/// (an accusation that completes the words for a death, queued urgent news), so the shell asks again
/// after each. Each clause mirrors one step of `tick(now:)`, in its order; a step added there needs
/// its clause here.
extension Membership {
    /// The earliest time at which `tick(now:)` may act, if no input comes first; `.max` once left.
    /// It may lie in the past: a tick is due now.
    public func nextDeadline() -> Millis {
        guard !hasLeft else { return .max }
        // A view change reported by no input yet (`revoke` has no actions of its own).
        if viewChanged || !outbox.isEmpty { return lastTick ?? .min }
        var due = Millis.max
        func at(_ t: Millis) { due = min(due, t) }
        // Pause detection: a gap longer than `pauseThreshold` reads as a suspension of this process,
        // so never sleep that long (the beat below keeps it far shorter anyway).
        if let last = lastTick { at(last + profile.pauseThreshold / 2) }
        if !ringsValid { at(nextRingRefresh) }
        // Failure detection: silence past the limit (or three quarters of it, for the direct
        // question), and suspicions whose timeout ends with enough words for a death.
        let threshold = suspectAfter
        for key in subjects.union(suspecting) {
            guard let m = members[key], m.isReachable else { continue }
            if m.indirectVia != nil || m.check?.helperAnswer != nil, m.suspectSince == nil { continue }
            let since = max(m.lastHeard, (m.watchedSince ?? .min / 2) - threshold / 2)
            if let suspected = m.suspectSince {
                if watcherWords(against: key) + 1 >= wordsNeeded { at(suspected + profile.suspicionTimeout) }
            } else {
                at(since + threshold + 1)
                if (m.probedAt ?? .min / 2) < since { at(since + threshold * 3 / 4 + 1) }
            }
        }
        for key in deadWordHeld {
            guard let m = members[key], m.isReachable, m.deadWord != nil, watcherWords(against: key) >= wordsNeeded else { continue }
            at(m.lastHeard + suspectAfter / 2)
        }
        // Checks: their next round or their end; indirect members: their next check.
        for key in checking {
            guard let c = members[key]?.check else { continue }
            at(min(c.nextRound, c.until))
        }
        if let echo = deathEchoes.values.min() { at(echo) }
        if let s = syncAwait { at(s.since + suspectAfter) }
        for key in indirect {
            guard let m = members[key], m.check == nil, let r = m.recheckAt else { continue }
            at(r)
        }
        if let oldest = secondHandSince.values.min() { at(oldest + suspectAfter) }
        // Sync, dead retry and join run only on a tick that beats (see `tick(now:)`): the beat's
        // deadline covers them.
        at(nextBeat)
        if broadcasts.pendingUrgent > 0 { at(lastPush + profile.tick) }
        return due
    }
}
