"""The official OpenAI Python client against a lora-mpt generate server: each call the test needs,
its outcome printed as one JSON object (the TypeScript test asserts on it).

Run: python openai_client.py BASE_URL API_KEY
"""
import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
out = {"version": openai.__version__}


def error_of(call):
    try:
        call()
        return None
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "param": body.get("param"), "code": body.get("code")}


model = client.models.list().data[0].id
out["listed"] = model
retrieved = client.models.retrieve(model)
out["retrieved"] = {"id": retrieved.id, "object": retrieved.object, "owned_by": retrieved.owned_by}
out["retrieve_other"] = error_of(lambda: client.models.retrieve("gpt-4o"))
out["wrong_key"] = error_of(
    lambda: openai.OpenAI(base_url=base_url, api_key="x" * 32, max_retries=0).models.list()
)

greedy = {"temperature": 0, "max_tokens": 6}
def chat(role):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": role, "content": "You answer in one word."}, {"role": "user", "content": "Name a colour."}],
        **greedy,
    )
    return {"content": r.choices[0].message.content, "usage": r.usage.model_dump()}
out["system"] = chat("system")
out["developer"] = chat("developer")

say_hi = [{"role": "user", "content": "Say hi."}]
plain = client.chat.completions.create(model=model, messages=say_hi, **greedy)
text = client.chat.completions.create(model=model, messages=say_hi, response_format={"type": "text"}, **greedy)
out["plain"] = plain.choices[0].message.content
out["format_text"] = text.choices[0].message.content
out["format_json_object"] = error_of(
    lambda: client.chat.completions.create(model=model, messages=say_hi, response_format={"type": "json_object"}, **greedy)
)

alpacas = [{"role": "user", "content": "Tell me about alpacas."}]
full = client.chat.completions.create(model=model, messages=alpacas, **greedy).choices[0].message.content
stop = full[:1]
whole = client.chat.completions.create(model=model, messages=alpacas, stop=stop, **greedy)
deltas = []
finish = None
for chunk in client.chat.completions.create(model=model, messages=alpacas, stop=stop, stream=True, **greedy):
    if chunk.choices:
        deltas.append({"role": chunk.choices[0].delta.role, "content": chunk.choices[0].delta.content})
        finish = chunk.choices[0].finish_reason or finish
out["empty"] = {"answer": full, "whole": whole.choices[0].message.content, "deltas": deltas, "finish": finish}

completion = client.completions.create(model=model, prompt="Alpacas are", temperature=0, max_tokens=5)
out["completion"] = {"text": completion.choices[0].text, "usage": completion.usage.model_dump()}
print(json.dumps(out))
