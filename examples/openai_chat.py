"""An agent on the OpenAI SDK: it reads OPENAI_API_KEY and HTTPS_PROXY like any SDK user.

Under `firewall run` the key is a placeholder; the proxy adds the real one.
Set OPENAI_BASE_URL to point it at another endpoint.
"""

import openai

client = openai.OpenAI(max_retries=0)
try:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in five words."}]
    )
    print(reply.choices[0].message.content)
except openai.APIStatusError as error:  # a refusal by the firewall reads like an API error
    print(f"{error.status_code}: {error.body}")
