// serve_openai.cjs: the official openai npm client against `nibble serve` (run by
// test_serve.sh with NB_URL, NB_KEY and NB_OPENAI, the installed package's folder).
const OpenAI = require(process.env.NB_OPENAI);
const client = new OpenAI({ baseURL: process.env.NB_URL, apiKey: process.env.NB_KEY });
const assert = (c, what) => { if (!c) throw new Error('failed: ' + what); console.log('ok   openai: ' + what); };

(async () => {
    const models = await client.models.list();
    assert(models.data.length === 1 && models.data[0].id === 'default', 'models.list');
    const msgs = [{ role: 'user', content: 'And God said' }];
    const r = await client.chat.completions.create({ model: 'default', messages: msgs, max_tokens: 16, temperature: 0 });
    const text = r.choices[0].message.content;
    assert(text.length > 0 && r.choices[0].finish_reason === 'length' && r.usage.completion_tokens === 16,
           'chat.completions.create');
    const s = await client.chat.completions.create({ model: 'default', messages: msgs, max_tokens: 16, temperature: 0,
                                                     stream: true, stream_options: { include_usage: true } });
    let streamed = '', usage = null, finish = null;
    for await (const ch of s) {
        if (ch.choices.length) { streamed += ch.choices[0].delta.content || ''; finish = ch.choices[0].finish_reason || finish; }
        if (ch.usage) usage = ch.usage;
    }
    assert(streamed === text && finish === 'length' && usage && usage.completion_tokens === 16, 'chat stream');
    const c = await client.completions.create({ model: 'default', prompt: 'In the beginning', max_tokens: 8, temperature: 0, stop: ['\n'] });
    assert(typeof c.choices[0].text === 'string' && !c.choices[0].text.includes('\n'), 'completions.create with stop');
    try {
        await client.chat.completions.create({ model: 'default', messages: [], max_tokens: 4 });
        assert(false, 'a bad request throws');
    } catch (e) {
        assert(e.status === 400 && /messages/.test(e.message), 'a bad request throws BadRequestError');
    }
})().catch(e => { console.error(e.message || e); process.exit(1); });
