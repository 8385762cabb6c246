"""The DAG (bench/peers/dag.py) as a LangGraph StateGraph: one node per agent, an edge from both of
the wave before into each node (LangGraph waits for all of them), each node a small tool-calling
agent on ChatOpenAI: call, run the tool it asks for, call again."""

from __future__ import annotations

import operator
import os
from typing import Annotated, TypedDict

from dag import WAVES, WIDTH, agent_id, parents
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    outputs: Annotated[dict, operator.or_]  # each node adds its own key


def build(base_url: str, notes: str):
    @tool
    def list_files() -> str:
        """The files in the notes folder."""
        return "\n".join(sorted(os.listdir(notes)))

    llm = ChatOpenAI(model="bench", base_url=base_url, api_key="local", max_retries=0).bind_tools([list_files])

    def node(name: str):
        def run(state: State) -> dict:
            messages: list = [HumanMessage(f"{name}: list the notes. Before: {state['outputs']}")]
            reply = llm.invoke(messages)
            messages.append(reply)
            for call in reply.tool_calls:
                messages.append(ToolMessage(list_files.invoke(call["args"]), tool_call_id=call["id"]))
            return {"outputs": {name: llm.invoke(messages).content}}
        return run

    graph = StateGraph(State)
    for wave in range(WAVES):
        for i in range(WIDTH):
            name = agent_id(wave, i)
            graph.add_node(name, node(name))
            if wave:
                graph.add_edge(parents(wave), name)  # a list: after all of them
            else:
                graph.add_edge(START, name)
    for i in range(WIDTH):
        graph.add_edge(agent_id(WAVES - 1, i), END)
    return graph.compile()
