"""Drives /ap/v1/agent/ with the `agent-protocol-client` package from PyPI, as a real client does.

It runs in a venv of its own (the package pins pydantic 1; see conftest.py): `python client_scenario.py <base url>
<token> <other user's token> <step input>` prints what it saw as one JSON object.
"""

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from agent_protocol_client import AgentApi, ApiClient, Configuration, StepRequestBody, TaskRequestBody
from agent_protocol_client.exceptions import ApiException


async def main(base_url: str, token: str, other_token: str, step_input: str) -> dict:
    seen = {}
    async with ApiClient(Configuration(host=base_url), header_name="Authorization",
                         header_value=f"Token {token}") as client:
        api = AgentApi(client)
        task = await api.create_agent_task(TaskRequestBody(input=step_input, additional_input={"source": "client"}))
        seen["task"] = task.to_dict()
        listed = await api.list_agent_tasks(current_page=1, page_size=5)
        seen["tasks"] = [t.task_id for t in listed.tasks]
        seen["tasks_pagination"] = listed.pagination.to_dict()
        seen["got_task"] = (await api.get_agent_task(task.task_id)).to_dict()
        step = await api.execute_agent_task_step(task.task_id, StepRequestBody())  # the task's input runs first
        seen["step"] = step.to_dict()
        seen["got_step"] = (await api.get_agent_task_step(task.task_id, step.step_id)).to_dict()
        steps = await api.list_agent_task_steps(task.task_id, current_page=1, page_size=10)
        seen["steps"] = [s.step_id for s in steps.steps]
        with tempfile.TemporaryDirectory() as folder:  # the client uploads files by their path
            path = Path(folder) / "data.csv"
            path.write_bytes(b"a,b\n1,2\n")
            uploaded = await api.upload_agent_task_artifacts(task.task_id, file=str(path), relative_path="inputs")
        seen["uploaded"] = uploaded.to_dict()
        artifacts = await api.list_agent_task_artifacts(task.task_id, current_page=1, page_size=10)
        seen["artifacts"] = [a.to_dict() for a in artifacts.artifacts]
        seen["artifacts_pagination"] = artifacts.pagination.to_dict()
        content = await api.download_agent_task_artifact(task.task_id, uploaded.artifact_id)
        seen["downloaded"] = content.decode() if isinstance(content, bytes) else str(content)
    async with ApiClient(Configuration(host=base_url), header_name="Authorization",
                         header_value=f"Token {other_token}") as client:
        api = AgentApi(client)
        try:
            await api.get_agent_task(task.task_id)
            seen["other_user"] = "saw it"
        except ApiException as exc:
            seen["other_user"] = exc.status
        seen["other_tasks"] = [t.task_id for t in (await api.list_agent_tasks()).tasks]
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
