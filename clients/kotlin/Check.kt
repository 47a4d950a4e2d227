// A mobile client of the API in Kotlin, run by bin/clients (CI) with Debian's JVM against the same
// bin/serve as the web client: the generated client (openapi-generator, jvm-okhttp4) for the JSON
// routes and their problems, and the SSE reader of docs/api.md (`sendTurn`, compiled beside this
// file) for a turn's stream, its final event read as the generated class of its name.
// Environment: API_URL, API_TOKEN.

import com.google.gson.Gson
import dev.agentchat.client.apis.SessionsApi
import dev.agentchat.client.apis.UsageApi
import dev.agentchat.client.infrastructure.ApiClient
import dev.agentchat.client.infrastructure.ClientError
import dev.agentchat.client.infrastructure.ClientException
import dev.agentchat.client.models.ApprovalsIn
import dev.agentchat.client.models.CreateSession
import dev.agentchat.client.models.DecisionIn
import dev.agentchat.client.models.Problem
import dev.agentchat.client.models.TurnCompleted
import dev.agentchat.client.models.TurnPaused
import java.math.BigDecimal
import java.util.UUID
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

fun ensure(ok: Boolean, what: () -> String) {
    if (!ok) throw IllegalStateException(what())
}

fun main() {
    val api = System.getenv("API_URL") ?: error("API_URL is not set")
    val token = System.getenv("API_TOKEN") ?: error("API_TOKEN is not set")
    ApiClient.accessToken = token
    val sessions = SessionsApi(api)
    try {
        val session = sessions.createSession(CreateSession(agent = "assistant"))
        println("ok  a session (the generated client)")

        val refused = try {
            sessions.createSession(CreateSession(agent = "assistant", team = "planner"))
            null
        } catch (e: ClientException) {
            e
        }
        ensure(refused?.statusCode == 422) { "agent and team: ${refused?.statusCode}" }
        val problem = Gson().fromJson((refused!!.response as ClientError<*>).body as String, Problem::class.java)
        ensure(problem.code == "invalid-input" && problem.status == 422) { "the problem: ${problem.code}" }
        println("ok  a 4xx is a Problem")

        val events = mutableListOf<TurnEvent>()
        val body = """{"message": "What is 12 * 7?", "client_turn_id": "${UUID.randomUUID()}"}"""
        runBlocking { sendTurn(api, token, session.id.toString(), body) { events.add(it) } }
        ensure(events.map { it.id } == (1L..events.size.toLong()).toList()) { "ids ${events.map { it.id }}" }
        ensure(events.last().event == "TurnCompleted") { "ended ${events.last().event}" }
        val final = Gson().fromJson(events.last().data, TurnCompleted::class.java)
        ensure(final.event == TurnCompleted.Event.TurnCompleted && BigDecimal(final.cost!!.usd) > BigDecimal.ZERO) {
            "the final event: ${events.last().data}"
        }
        println("ok  a turn read with the SSE reader of docs/api.md, its final event a TurnCompleted")

        val reminders = sessions.createSession(CreateSession(agent = "assistant")).id.toString()
        val paused = mutableListOf<TurnEvent>()
        runBlocking { sendTurn(api, token, reminders, """{"message": "Remind me to call mom at 18:00"}""") { paused.add(it) } }
        ensure(paused.last().event == "TurnPaused") { "the reminder turn ended ${paused.last().event}" }
        val pause = Gson().fromJson(paused.last().data, TurnPaused::class.java)
        val decision = ApprovalsIn(decisions = pause.pending.map { DecisionIn(toolCallId = it.toolCallId, approved = false, note = "not now") })
        val rest = mutableListOf<TurnEvent>()
        runBlocking { decideTurn(api, token, reminders, pause.runId, paused.last().id, Gson().toJson(decision)) { rest.add(it) } }
        ensure(rest.last().event == "TurnCompleted" && rest.first().id == paused.last().id + 1) {
            "the decision's events: ${rest.map { "${it.id} ${it.event}" }}"
        }
        println("ok  a turn paused for approval (TurnPaused), declined with the generated ApprovalsIn: the rest of its run")

        val usage = UsageApi(api).getUsage()
        val byDay = usage.byDay.fold(BigDecimal.ZERO) { sum, day -> sum + BigDecimal(day.cost.usd) }
        ensure(byDay.compareTo(BigDecimal(usage.totals.cost.usd)) == 0 && byDay > BigDecimal.ZERO) {
            "usage: ${usage.totals.cost.usd} by day $byDay"
        }
        println("ok  /usage in decimals, the days adding up to the totals")
        println("all 5 Kotlin checks passed")
    } catch (e: Exception) {
        System.err.println("FAILED: $e")
        exitProcess(1)
    }
}
