// node encode_ref.js ENCODER_DIR FILE...: for each FILE (read as UTF-8), one
// line of the ids that the npm package gpt-3-encoder gives it, separated by
// spaces. Its encode() copies its whole output for every pre-token, so a
// long text is handed to it in pieces cut where every GPT-2 pre-token
// boundary is certain: before a space that follows a non-space and precedes
// a non-space (no alternative of GPT-2's pattern runs from a non-space into
// a following space, and " ?X" always starts at that space). Cutting there
// gives the ids of the whole text, piece by piece.
const path = require('path');
const fs = require('fs');
const { encode } = require(path.resolve(process.argv[2]));
for (const file of process.argv.slice(3)) {
    const text = fs.readFileSync(file, 'utf8');
    const out = [];
    let start = 0;
    const cut = /\S \S/g;
    while (start < text.length) {
        let end = text.length;
        if (text.length - start > 4000) {
            cut.lastIndex = start + 2000;
            const m = cut.exec(text);
            if (m) end = m.index + 1;
        }
        for (const id of encode(text.slice(start, end))) out.push(id);
        start = end;
    }
    process.stdout.write(out.join(' ') + '\n');
}
