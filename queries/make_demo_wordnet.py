"""Writes the demo WordNet-3.0-format database in queries/wordnet/ (data.noun, data.verb,
data.adj, data.adv) from the synsets listed below: the exact wndb(5) line format, real byte
offsets, pointers between the demo synsets, verb frames, adjective satellites and markers.
The synsets and glosses are written for OpenWIT's demo (not taken from WordNet).
Run: python3 queries/make_demo_wordnet.py"""
import os

HEADER = [
    "OpenWIT demo lexical database in the WordNet 3.0 database format (wndb(5)).",
    "A few dozen synsets written for the OpenWIT demo; not Princeton WordNet.",
    "For the real database install Debian's wordnet-base (/usr/share/wordnet).",
]

# key: (lex_filenum, ss_type, [(word, lex_id)], [(ptr, target_key, source_target)], frames, gloss)
NOUN = {
    "dog": (5, "n", [("dog", 0), ("domestic_dog", 0), ("Canis_familiaris", 0)], [("@", "animal", "0000")], None,
            "a domesticated animal kept as a pet; \"the dog barked at the postman\""),
    "animal": (3, "n", [("animal", 0), ("beast", 0)], [("~", "dog", "0000"), ("~", "cat", "0000")], None,
               "a living creature that can move and feel"),
    "cat": (5, "n", [("cat", 0), ("true_cat", 0)], [("@", "animal", "0000")], None,
            "a small furry animal with a long tail, kept as a pet"),
    "red_fox": (5, "n", [("red_fox", 0), ("Vulpes_vulpes", 0)], [("@", "animal", "0000")], None,
                "a wild fox with red fur and a bushy tail"),
    "hot_dog": (13, "n", [("hot_dog", 0), ("frank", 1)], [], None,
                "a sausage served in a long bread roll"),
    "car": (6, "n", [("car", 0), ("auto", 0), ("automobile", 0), ("motorcar", 0)], [("@", "vehicle", "0000")], None,
            "a motor vehicle with four wheels; \"a red car parked on a street\""),
    "vehicle": (6, "n", [("vehicle", 0)], [("~", "car", "0000"), ("~", "bicycle", "0000"), ("~", "bus", "0000")], None,
                "a thing used for carrying people or goods"),
    "bicycle": (6, "n", [("bicycle", 0), ("bike", 0), ("wheel", 1)], [("@", "vehicle", "0000")], None,
                "a vehicle with two wheels moved by pedals"),
    "bus": (6, "n", [("bus", 0), ("autobus", 0), ("coach", 0)], [("@", "vehicle", "0000")], None,
            "a large vehicle that carries many passengers along a route"),
    "taxi": (6, "n", [("taxi", 0), ("cab", 0), ("taxicab", 0)], [("@", "car", "0000")], None,
             "a car that carries passengers for a fare"),
    "apple": (13, "n", [("apple", 0)], [("@", "fruit", "0000")], None,
              "a round fruit with red, green or yellow skin"),
    "banana": (13, "n", [("banana", 0)], [("@", "fruit", "0000")], None,
               "a long curved fruit with a yellow skin"),
    "fruit": (13, "n", [("fruit", 0)], [("~", "apple", "0000"), ("~", "banana", "0000")], None,
              "the sweet part of a plant that people eat"),
    "pizza": (13, "n", [("pizza", 0), ("pizza_pie", 0)], [], None,
              "a flat bread baked with tomato and cheese"),
    "beach": (17, "n", [("beach", 0)], [], None, "a strip of sand beside the sea"),
    "street": (6, "n", [("street", 0)], [], None, "a road in a city or town with buildings along it"),
    "street_light": (6, "n", [("street_light", 0), ("streetlight", 0)], [], None, "a lamp on a post beside a street"),
    "London": (15, "n", [("London", 0), ("Greater_London", 0), ("British_capital", 0)], [], None,
               "the capital city of the United Kingdom"),
    "St._Louis": (15, "n", [("St._Louis", 0)], [], None, "a city on the Mississippi River"),
    "Einstein": (18, "n", [("Einstein", 0), ("Albert_Einstein", 0)], [], None, "a physicist (1879-1955)"),
    "red_n": (7, "n", [("red", 0), ("redness", 0)], [("\\", "red_a", "0101")], None,
              "the colour of blood or ripe strawberries"),
    "blue_n": (7, "n", [("blue", 0), ("blueness", 0)], [], None, "the colour of the clear sky"),
    "sky": (17, "n", [("sky", 0)], [], None, "the space above the earth that looks blue by day"),
    "tree": (20, "n", [("tree", 0)], [], None, "a tall plant with a trunk and branches"),
    "park": (15, "n", [("park", 0), ("parkland", 0)], [], None, "a large public garden in a town"),
}
VERB = {
    "park_v": (38, "v", [("park", 0)], [], [(8, 0), (11, 0)], "leave a vehicle in a place for a time; \"she parked the car\""),
    "ride": (38, "v", [("ride", 0)], [], [(2, 0), (8, 0)], "sit on and travel on a bicycle or a horse"),
    "bark": (32, "v", [("bark", 0)], [], [(2, 0)], "make the sound a dog makes"),
    "run": (38, "v", [("run", 0)], [], [(2, 0)], "move fast on foot"),
    "sleep": (29, "v", [("sleep", 0), ("kip", 0), ("slumber", 0)], [], [(2, 0)], "be asleep"),
    "drive": (38, "v", [("drive", 0)], [], [(8, 0), (11, 0)], "operate a vehicle"),
    "eat": (34, "v", [("eat", 0)], [], [(8, 0)], "take food into the mouth and swallow it"),
    "used_to": (42, "v", [("use", 1)], [], [(24, 0)], "do something often in the past"),
}
ADJ = {
    "red_a": (0, "a", [("red", 0), ("reddish", 0)], [("&", "crimson", "0000"), ("&", "scarlet", "0000"), ("=", "red_n", "0000")], None,
              "having the colour of blood"),
    "crimson": (0, "s", [("crimson", 0), ("deep_red", 0)], [("&", "red_a", "0000")], None, "of a deep red colour"),
    "scarlet": (0, "s", [("scarlet", 0), ("vermilion", 0)], [("&", "red_a", "0000")], None, "of a bright red colour"),
    "blue_a": (0, "a", [("blue", 0), ("bluish", 0)], [], None, "having the colour of the clear sky"),
    "asleep": (0, "a", [("asleep(p)", 0)], [("&", "sleeping", "0000")], None, "in a state of sleep"),
    "sleeping": (0, "s", [("sleeping(a)", 0), ("dormant", 0)], [("&", "asleep", "0000")], None, "lying asleep"),
    "used": (0, "s", [("used_to(p)", 0), ("wont_to(p)", 0)], [("&", "asleep", "0000")], None, "in the habit; \"used to walking\""),
    "galore": (0, "s", [("galore(ip)", 0), ("aplenty(ip)", 0)], [("&", "asleep", "0000")], None, "in large amounts"),
    "parked": (0, "a", [("parked", 0)], [], None, "(of a vehicle) left standing in a place"),
    "yellow": (0, "a", [("yellow", 0), ("yellowish", 0)], [], None, "having the colour of a ripe banana"),
}
ADV = {
    "fast": (2, "r", [("fast", 0), ("quickly", 0)], [], None, "at a high speed"),
    "outdoors": (2, "r", [("outdoors", 0), ("outside", 0), ("out_of_doors", 0)], [], None, "in the open air"),
}
FILES = [("data.noun", NOUN, "n"), ("data.verb", VERB, "v"), ("data.adj", ADJ, "a"), ("data.adv", ADV, "r")]
POS_OF = {}
for _, table, _ in FILES:
    for k, v in table.items():
        POS_OF[k] = v[1]


def header_lines():
    return ["  %d %s  " % (i + 1, h) for i, h in enumerate(HEADER)]


def line(key, spec, offsets):
    lex, ss, words, ptrs, frames, gloss = spec
    parts = ["%08d" % offsets[key], "%02d" % lex, ss, "%02x" % len(words)]
    for w, lid in words:
        parts += [w, "%x" % lid]
    parts.append("%03d" % len(ptrs))
    for sym, target, st in ptrs:
        pos = POS_OF[target]
        parts += [sym, "%08d" % offsets[target], pos, st]
    if frames is not None:
        parts.append("%02d" % len(frames))
        for f, w in frames:
            parts += ["+", "%02d" % f, "%02x" % w]
    return " ".join(parts) + " | " + gloss + "  "


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet")
    os.makedirs(out, exist_ok=True)
    offsets = {k: 0 for k in POS_OF}
    for _ in range(2):  # offsets are fixed width: the second pass is exact
        texts = {}
        for name, table, _ in FILES:
            pos = 0
            lines = []
            for h in header_lines():
                lines.append(h)
                pos += len(h.encode()) + 1
            for k, spec in table.items():
                offsets[k] = pos
                ln = line(k, spec, offsets)
                lines.append(ln)
                pos += len(ln.encode()) + 1
            texts[name] = "\n".join(lines) + "\n"
    for name, text in texts.items():
        with open(os.path.join(out, name), "w", newline="\n") as f:
            f.write(text)


if __name__ == "__main__":
    main()
