package session

// codeWordList are the words of short codes: 256 short, distinct, common
// English words, so each word carries 8 bits.
var codeWordList = [256]string{
	"acid", "acorn", "actor", "adobe", "agent", "alarm", "album", "alien", "amber", "angle", "ankle",
	"apple", "april", "apron", "arena", "armor", "arrow", "atlas", "attic", "audio", "autumn",
	"badge", "bagel", "baker", "bamboo", "banana", "banjo", "barn", "basil", "basket", "beach",
	"beacon", "bean", "bear", "beaver", "bell", "bench", "berry", "bison", "blade", "blanket",
	"blossom", "boat", "bonus", "book", "boots", "bottle", "bounce", "box", "bracket", "bread",
	"brick", "bridge", "broom", "bucket", "bugle", "butter", "button", "cabin", "cactus", "camel",
	"camera", "candle", "canoe", "canyon", "carbon", "carpet", "carrot", "castle", "cedar", "cement",
	"chalk", "cherry", "chess", "circle", "citrus", "clock", "cloud", "clover", "cobalt", "coconut",
	"comet", "compass", "copper", "coral", "cotton", "cougar", "crayon", "cricket", "crystal", "cube",
	"cupcake", "dagger", "daisy", "dancer", "delta", "denim", "desert", "diamond", "dinner",
	"dolphin", "domino", "donkey", "dragon", "drum", "eagle", "easel", "echo", "eclipse", "elbow",
	"ember", "emerald", "engine", "falcon", "feather", "fiddle", "flame", "flute", "forest", "fossil",
	"fox", "galaxy", "garden", "garlic", "gecko", "ginger", "glacier", "glove", "goose", "granite",
	"grape", "guitar", "hammer", "harbor", "harp", "hazel", "helmet", "honey", "hornet", "igloo",
	"island", "ivory", "jacket", "jaguar", "jelly", "jigsaw", "jungle", "kayak", "kettle", "kitten",
	"koala", "ladder", "lagoon", "lantern", "laser", "lemon", "lentil", "lizard", "locket", "magnet",
	"mango", "maple", "marble", "meadow", "melon", "meteor", "mirror", "mitten", "monkey", "moose",
	"mosaic", "muffin", "napkin", "nectar", "needle", "noodle", "oasis", "ocean", "olive", "onion",
	"orange", "orbit", "orchid", "otter", "owl", "paddle", "panda", "parrot", "peach", "pebble",
	"pepper", "piano", "pickle", "pilot", "pirate", "planet", "plum", "pocket", "potato", "prism",
	"puzzle", "quartz", "quilt", "rabbit", "radar", "radish", "raven", "ribbon", "river", "robot",
	"rocket", "saddle", "salmon", "sandal", "saturn", "scarf", "shadow", "shell", "silver", "sketch",
	"sled", "sloth", "spider", "spoon", "squid", "stamp", "statue", "sugar", "summit", "sunset",
	"swan", "table", "tango", "teapot", "thunder", "tiger", "tomato", "topaz", "torch", "tractor",
	"tulip", "tunnel", "turtle", "valley", "velvet", "violin", "waffle", "walnut", "walrus", "whale",
	"willow", "window", "wizard", "yogurt", "zebra", "zipper",
}
