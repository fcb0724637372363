/**
 * Texts the encoder choice measures candidates with (src/models/encoder-choice.ts): passages of
 * the lengths a search service embeds (about 40 to 200 tokens) and short queries, on varied
 * topics and in a few languages. Written for qembed; shipped inside the build so that the choice
 * needs no dataset.
 */
export const PROBE_PASSAGES: readonly string[] = [
  'The kettle switched itself off with a soft click, and for a moment the kitchen was quiet enough to hear the rain against the window. She poured the water over the leaves, set a timer for four minutes and went back to the letter she had been trying to finish since breakfast.',
  'Binary quantization keeps only the sign of each dimension of an embedding, so a 384-dimensional float vector of 1,536 bytes becomes a code of 48 bytes. Hamming distance between two codes is a population count of their exclusive or, which modern processors compute in a single instruction per 64 bits.',
  'To replace a bicycle inner tube, release the brake, open the quick-release lever and remove the wheel. Push one side of the tyre off the rim with two levers, pull out the old tube and check the inside of the tyre for thorns or glass before fitting the new tube with a little air in it.',
  'Photosynthesis converts light energy into chemical energy. In the light-dependent reactions, water is split and oxygen is released while ATP and NADPH are produced; the Calvin cycle then uses them to fix carbon dioxide into three-carbon sugars that the plant turns into glucose, starch and cellulose.',
  'The quarterly report shows revenue growing 12 percent year on year to 48.3 million, driven mainly by subscriptions in the northern region. Operating costs rose faster than expected because of a new data centre, and the board has asked for a revised forecast before the next meeting in March.',
  'Die Stadtbibliothek bleibt wegen Renovierungsarbeiten bis Ende Oktober geschlossen. Ausgeliehene Bücher können in der Zweigstelle am Marktplatz zurückgegeben werden, und die Leihfristen werden automatisch verlängert.',
  'Le marché couvert ouvre à sept heures le samedi. Les producteurs de la vallée y vendent des fromages, des légumes de saison et du pain cuit au feu de bois; il vaut mieux arriver tôt si l\'on veut trouver des fraises.',
  'function debounce(fn, wait) { let timer; return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), wait); }; } // Calls fn once the caller has stopped calling for `wait` milliseconds, e.g. to search only when the user pauses typing.',
  'A sourdough starter is a culture of wild yeast and lactic acid bacteria. Feed it equal weights of flour and water every day, keep it at room temperature, and it will double within a few hours of each feeding once it is established, usually after one or two weeks.',
  'The committee reviewed 214 applications this year and funded 37 projects, most of them in renewable energy storage and water treatment. Applicants who were not selected will receive written feedback, and the next call for proposals opens on the first of February.',
  'Migratory birds navigate using several cues at once: the position of the sun during the day, the rotation of the night sky around the celestial pole, the Earth\'s magnetic field, and landmarks such as coastlines and mountain ranges that they learn on their first journeys.',
  'If the service answers 429, the queue of texts waiting for the model is full. Wait for the number of seconds given in the Retry-After header before sending the request again, or lower the number of concurrent clients.',
  '東京都は日本の首都であり、人口は約1400万人です。公共交通機関が発達しており、多くの人が電車や地下鉄で通勤しています。',
  'Ancient Roman concrete has lasted for two thousand years partly because of lime clasts, small white chunks that react with water seeping into cracks and deposit calcium carbonate, sealing the cracks before they can spread. Engineers are now testing mixes that copy this self-healing behaviour.',
  'Patients should take the tablets with food, twice a day, for seven days, even if the symptoms improve earlier. Contact your doctor if a rash, swelling or difficulty breathing appears, and do not drink alcohol during the treatment.',
  'The match was decided in the last minute of extra time, when the substitute striker, who had been on the pitch for less than ten minutes, headed in a corner at the near post. The home supporters, who had been singing through the rain all evening, stayed in the stadium long after the final whistle.',
];

export const PROBE_QUERIES: readonly string[] = [
  'how many bytes is a binary embedding code',
  'replace bike inner tube',
  'what happens in the calvin cycle',
  'when does the library reopen',
  'why does roman concrete last so long',
  'what to do when the server returns 429',
  'sourdough starter how often to feed',
  'quarterly revenue growth northern region',
];
